"""The ``engine`` command: its parser and commands (``commands``), the starter task file (``starter``), the generated
reference (``reference``) and the quick exit (``shutdown``). Imports nothing heavy until a command needs it."""

from engine.cli.commands import build_parser, command, main

__all__ = ["build_parser", "command", "main"]
