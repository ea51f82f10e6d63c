"""Readers for tagging data: CoNLL files (one token per line) and plain text (one sentence per line).

Rows have ``text`` (the list of tokens, or a plain-text line), ``label`` (the list of tags, when there are tags)
and ``_line`` (the line of the sentence's first token). Pure Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine import LINE, DataError, Split
from engine_builtins.formats import load_files, read_lines

DOCSTART = "-DOCSTART-"
_SPACES = re.compile(r"[ \t]+")


def read_conll(path: Path, options: Any, what: str) -> Iterator[dict[str, Any]]:
    """Sentences from a CoNLL file: blocks of token lines separated by whitespace-only lines.

    Every token line must have as many fields as the file's first one (a field count that changes is how a token
    with a space in it, or a missing tag, shows up); ``-DOCSTART-`` lines are skipped and end a sentence.
    """
    rows: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    width: tuple[int, int] | None = None  # (field count, the line that set it)

    def flush() -> None:
        if tokens:
            row: dict[str, Any] = {LINE: first_line, "text": list(tokens)}
            if tags:
                row["label"] = list(tags)
            rows.append(row)
        tokens.clear()
        tags.clear()

    # Lines end at "\n" only (not at \x1c-\x1e, \x85 or \u2028 as splitlines() would): those may sit in tokens.
    for number, line in read_lines(path, options.encoding, what):
        line = line.removesuffix("\n").removesuffix("\r")
        yield from rows
        rows.clear()
        if not line.strip():
            flush()
            continue
        fields = line.split(options.separator) if options.separator else _SPACES.split(line.strip(" \t"))
        if fields[0].strip() == DOCSTART:
            flush()
            continue
        if width is None:
            width = (len(fields), number)
        elif len(fields) != width[0]:
            hint = (" If tokens contain spaces, set data.separator to \"\\t\"."
                    if not options.separator and len(fields) > width[0] else "")
            raise DataError(
                f"expected {width[0]} fields like line {width[1]}, got {len(fields)}: {line.strip()!r}; "
                f"is a column missing?{hint}", path, number,
            )
        token_at, tag_at = _column(options.token_column, len(fields)), _column(options.tag_column, len(fields))
        if token_at is None:
            raise DataError(f"data.token_column is {options.token_column}, but the line has {len(fields)} field(s)",
                            path, number)
        if not tokens:
            first_line = number
        tokens.append(fields[token_at].strip())
        if tag_at is None or tag_at == token_at:
            if options.labels_required:
                raise DataError(
                    f"missing tag column: the line has {len(fields)} field(s) and data.tag_column is "
                    f"{options.tag_column} "
                    f"(expected a token and a tag{', separated by a tab' if options.separator == chr(9) else ''})",
                    path, number,
                )
            continue
        tag = fields[tag_at].strip()
        if not tag:
            raise DataError(f"empty tag for token {fields[token_at].strip()!r}", path, number)
        tags.append(tag)
    flush()
    yield from rows


def _column(index: int, count: int) -> int | None:
    """A column index (negative counts from the end) resolved against ``count`` fields, or None if out of range."""
    resolved = index + count if index < 0 else index
    return resolved if 0 <= resolved < count else None


def read_plain(path: Path, options: Any, what: str) -> Iterator[dict[str, Any]]:
    """One row per non-blank line; the line is the text, split into tokens on whitespace by the task."""
    lines = read_lines(path, options.encoding, what)
    if options.labels_required:
        raise DataError(
            "plain text has no tags or labels to train or evaluate with. For a file with one token and its tag per "
            "line, set data.format to \"conll\" (engine evaluate and predict read such a file when it is named "
            "*.conll)", path,
        )
    return ({LINE: number, "text": line.removesuffix("\n").removesuffix("\r")}
            for number, line in lines if line.strip())


def load_conll(options: Any, base_dir: Path) -> dict[str, Split]:
    """CoNLL: one token per line with its tag in a column; a blank line ends a sentence."""
    return load_files(options, base_dir, lambda path, what: read_conll(path, options, what))


def load_plain(options: Any, base_dir: Path) -> dict[str, Split]:
    """Plain text, one sentence (or text) per line: input for `engine predict`."""
    return load_files(options, base_dir, lambda path, what: read_plain(path, options, what))
