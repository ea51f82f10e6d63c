from engine.cli.commands import command

command()
