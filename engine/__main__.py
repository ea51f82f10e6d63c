from engine.cli import command

command()
