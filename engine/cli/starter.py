"""``engine init DATA_FILE``: a starter task file made from the data itself.

It reads the file (its format from the extension), picks the text and label columns, and the task from what the
labels are: a column of tags in a CoNLL file -> ``tagging``, numbers with fractions or many values ->
``regression``, anything else -> ``classification``. It says why for each choice. A validation file next to the
data (``dev``, ``valid``, ``validation`` in the name) is used; without one, ``data.validation_split`` holds out
10%. JSON has no comments, so the explanations are printed, not written. It names the built-in tasks and formats;
a task from a plugin is a ``--task`` away.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from engine.errors import EngineError

FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".conll": "conll", ".iob": "conll", ".bio": "conll"}
LABEL_NAMES = ("label", "labels", "score", "target", "class", "category", "sentiment", "y")
SAMPLE = 200_000  # rows read to describe a file
VALIDATION_NAMES = ("validation", "valid", "dev")


@dataclass
class Inspection:
    path: Path
    format: str
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    label: str | None = None
    labels: Counter[str] = field(default_factory=Counter)
    words: list[int] = field(default_factory=list)
    separator: str | None = None
    reasons: list[str] = field(default_factory=list)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


GZIP_MAGIC = b"\x1f\x8b"


def _text_lines(path: Path) -> list[str]:
    """The first lines of a UTF-8 text file; a binary or compressed file is an EngineError saying so."""
    with path.open("rb") as handle:
        start = handle.read(2)
        handle.seek(0)
        if start == GZIP_MAGIC:
            raise EngineError(f"{path}: a gzip-compressed file; engine init reads the uncompressed file "
                              f"(gunzip -k {path.name}, then engine init on it)")
        raw = b"".join(islice(handle, SAMPLE * 20 + 1))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise EngineError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); engine init reads "
                          "UTF-8 text files: is it binary, or in another encoding? (engine run reads other "
                          "encodings with data.encoding)") from None
    if "\x00" in text:
        raise EngineError(f"{path}: holds NUL bytes: a binary file, not {path.suffix} text")
    return text.splitlines(keepends=True)


def _records(path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    lines = _text_lines(path)
    if fmt == "jsonl":
        records = []
        for number, line in enumerate(lines[:SAMPLE], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EngineError(f"{path}, line {number}: not valid JSON ({exc.msg}); a .jsonl file holds one "
                                  "JSON object per line") from None
            if not isinstance(record, dict):
                raise EngineError(f"{path}, line {number}: expected a JSON object ({{\"text\": ..., "
                                  f"\"label\": ...}}), got {type(record).__name__}")
            records.append(record)
        return (list(dict.fromkeys(k for r in records for k in r)) if records else []), records
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",",
                        quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    try:
        header = next(reader, [])
        return header, [dict(zip(header, row)) for row in islice(reader, SAMPLE)]
    except csv.Error as exc:
        raise EngineError(f"{path}, line {reader.line_num}: cannot read it as {fmt.upper()} ({exc})") from None


def inspect_table(path: Path, fmt: str) -> Inspection:
    header, records = _records(path, fmt)
    found = Inspection(path, fmt, rows=len(records), columns=header)
    if not records:
        raise EngineError(f"{path}: no rows to learn from")
    # Nested values (objects, lists) are neither text nor a label a starter file can name.
    nested = [c for c in header if any(isinstance(r.get(c), (dict, list)) for r in records)]
    header = [c for c in header if c not in nested]
    if len(header) < 2:
        delimiter = {"tsv": "tab-separated", "csv": "comma-separated"}.get(fmt, "")
        what = (f"{len(header)} usable column(s) ({', '.join(map(repr, header)) or 'none'})"
                + (f"; {', '.join(map(repr, nested))} hold nested values" if nested else ""))
        raise EngineError(f"{path}: found {what}; engine init needs a text column and a label column"
                          + (f" (a .{fmt} file is {delimiter}: check the delimiter)" if delimiter else ""))
    if nested:
        found.reasons.append(f"left out {', '.join(map(repr, nested))}: nested values, not text")

    def values(column: str) -> list[str]:
        return [str(r.get(column, "")) for r in records]

    def mean_words(column: str) -> float:
        return statistics.fmean(len(v.split()) for v in values(column))

    named = [c for c in header if c.lower() in LABEL_NAMES]
    label = named[0] if named else min((c for c in header), key=lambda c: len(set(values(c))))
    found.label = label
    found.reasons.append(f"label column {label!r}: " + ("its name says so" if named else "it has the fewest values"))
    found.text = [c for c in header if c != label and mean_words(c) >= 3][:2]
    if not found.text:
        found.text = [max((c for c in header if c != label), key=mean_words)]
    found.reasons.append(f"text column(s) {', '.join(map(repr, found.text))}: "
                         + ("a pair of texts" if len(found.text) == 2 else "the longest texts"))
    found.labels = Counter(values(label))
    found.words = [sum(len(str(r.get(c, "")).split()) for c in found.text) for r in records]
    return found


def inspect_conll(path: Path) -> Inspection:
    found = Inspection(path, "conll")
    sentence = 0
    for line in _text_lines(path):
        if not line.strip() or line.startswith("-DOCSTART-"):
            if sentence:
                found.words.append(sentence)
            sentence = 0
            continue
        if "\t" in line:
            found.separator = "\t"
        found.labels[re.split(r"\t" if found.separator else r"\s+", line.strip())[-1]] += 1
        sentence += 1
    if sentence:
        found.words.append(sentence)
    found.rows = len(found.words)
    found.reasons.append("task 'tagging': one token and its tag per line")
    return found


def choose_task(found: Inspection) -> str:
    if found.format == "conll":
        return "tagging"
    numbers = [_number(v) for v in found.labels.elements()]
    if numbers and all(n is not None for n in numbers):
        fractional = any(n != int(n) for n in numbers if n is not None)
        if fractional or len(found.labels) > 20:
            found.reasons.append("task 'regression': the labels are numbers"
                                 + (" with fractions" if fractional else f" with {len(found.labels)} values"))
            return "regression"
    found.reasons.append(f"task 'classification': {len(found.labels)} label values")
    return "classification"


def validation_file(path: Path) -> Path | None:
    stem = path.stem.lower()
    for candidate in sorted(path.parent.glob(f"*{path.suffix}")):
        name = candidate.stem.lower()
        if candidate != path and any(v in name for v in VALIDATION_NAMES) and not any(v in stem for v in
                                                                                       VALIDATION_NAMES):
            return candidate
    return None


def starter(data: Path, output: Path, task: str | None = None) -> tuple[dict[str, Any], Inspection]:
    """The task file for ``data`` (to be written at ``output``) and what was found."""
    fmt = FORMATS.get(data.suffix.lower())
    if fmt is None:
        raise EngineError(f"{data}: cannot tell the format from the extension {data.suffix!r}; expected one of: "
                          f"{', '.join(sorted(FORMATS))} (or write a task file by hand: docs/reference.md)")
    if not data.is_file():
        raise EngineError(f"{data}: no such file")
    found = inspect_conll(data) if fmt == "conll" else inspect_table(data, fmt)
    chosen = task or choose_task(found)
    if task:
        found.reasons.append(f"task {task!r}: as --task says")

    def relative(path: Path) -> str:
        import os

        return Path(os.path.relpath(path.resolve(), output.resolve().parent)).as_posix()

    section: dict[str, Any] = {"format": fmt, "train": relative(data)}
    validation = validation_file(data)
    if validation is not None:
        section["validation"] = relative(validation)
        found.reasons.append(f"validation data: {validation.name}, next to the training file")
    else:
        section["validation_split"] = 0.1
        found.reasons.append("validation data: none found next to the file, so data.validation_split holds out a "
                             "seeded 10% of the training rows")
    if fmt != "conll":
        section["text"] = found.text[0] if len(found.text) == 1 else found.text
        section["label"] = found.label
    elif found.separator:
        section["separator"] = found.separator
    config = {"task": chosen, "model": {"name": "all-MiniLM-L6-v2"}, "data": section,
              "training": {"epochs": 3, "seed": 13}, "output_dir": f"runs/{data.parent.name or data.stem}"}
    return config, found


def summary(found: Inspection) -> list[str]:
    lines = [f"{found.path}: {found.format}, {found.rows:,} {'sentences' if found.format == 'conll' else 'rows'}"
             + (f" (the first {SAMPLE:,} read)" if found.rows >= SAMPLE else "")]
    if found.columns:
        lines.append(f"  columns: {', '.join(found.columns)}")
    top = ", ".join(f"{label} {count:,}" for label, count in found.labels.most_common(10))
    more = f" and {len(found.labels) - 10} more" if len(found.labels) > 10 else ""
    lines.append(f"  {'tags' if found.format == 'conll' else 'labels'}: {top}{more}")
    if found.words:
        lines.append(f"  {'tokens per sentence' if found.format == 'conll' else 'words per row'}: mean "
                     f"{statistics.fmean(found.words):.1f}, max {max(found.words)}")
    lines += [f"  {reason}" for reason in found.reasons]
    return lines
