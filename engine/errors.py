"""Errors that reach a user. Each carries a message a user can act on; the CLI prints it and exits non-zero."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any


class EngineError(Exception):
    """Base of every error meant for the user rather than for a traceback."""

    exit_code = 1
    #: Already printed (by the process that raised it first, under several processes): the CLI prints it no more.
    reported = False


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a task file: where (a JSON path such as ``training.epochs``), and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class ConfigError(EngineError):
    """Every problem found in a task file, reported together."""

    exit_code = 2

    def __init__(self, issues: Iterable[ConfigIssue], source: str | Path | None = None) -> None:
        self.issues = list(issues)
        self.source = str(source) if source else None
        where = f" in {self.source}" if self.source else ""
        n = len(self.issues)
        head = f"{n} problem{'s' if n != 1 else ''}{where}:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


class DataError(EngineError):
    """A problem in a data file, pointing at the file and, where known, the line."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None) -> None:
        # A task's encode_batch knows the line, not the file: the engine adds the file (engine.data.features).
        self.message, self.file, self.line = message, (str(file) if file is not None else None), line
        where = ""
        if self.file:
            where = f"{self.file}, line {line}: " if line is not None else f"{self.file}: "
        super().__init__(where + message)

    def __reduce__(self) -> Any:  # pickles whole across the processes that tokenize
        return type(self), (self.message, self.file, self.line)


class PluginError(EngineError):
    """A plugin could not be loaded, declared something twice, or a needed one is missing."""


class RunDirError(EngineError):
    """A run directory is missing, incomplete, or would be overwritten."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix when ``name`` is close to one of ``candidates``; otherwise ''."""
    matches = get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""
