"""What the core does around a chain of augmentations, chunk by chunk: the row conventions, the counts and the
examples each augmentation gets credited with (``features.augment`` runs the chain over a split and caches it).

The conventions (docs/plugins.md, ``augment``): before the chain every row of a chunk gets ``_origin``, its index in
the chunk; an augmentation passes the rows it keeps through as the same objects and makes a changed or new row as a
copy (``dict(row)``), so ``_origin`` follows it. After each step, every output row that is not one of the step's
input rows is marked ``_augmented`` (with the step's name, unless an earlier step marked it), so a later step (the
label-preservation filter) can tell augmented rows from original ones. Identity is the one test that needs nothing
of the augmentation: comparing texts would miss a row whose label alone changed, and cost a pass over every text.
The private keys go before the rows are stored.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import EngineError
from engine.registry import Augmentation

ORIGIN = "_origin"  # the row's index in its chunk, given before the chain: pairs an augmented row with its original
AUGMENTED = "_augmented"  # the name of the augmentation that made the row (absent on rows kept as they were)
PRIVATE = (ORIGIN, AUGMENTED)
EXAMPLES = 3  # (original, augmented) pairs kept per augmentation, for the run's manifest and report
EXAMPLE_FIELDS = ("text", "text_pair", "label")  # what an example shows of a row

Rows = list[dict[str, Any]]


@dataclass
class AugmentationSummary:
    """What one augmentation of the chain did to the training split: rows in, rows out, rows it produced (new or
    changed copies; a filter produces none), and a few of them beside the rows they came from."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    produced: int = 0
    #: Up to ``EXAMPLES`` ``{"original": fields, "augmented": fields}`` (``EXAMPLE_FIELDS`` of each row).
    examples: list[dict[str, Any]] = field(default_factory=list)
    #: A streamed split's counts cover only the rows read when the run was set up: the stream's length is not
    #: known before training reads it. Each pass augments again, each chunk with its own seeded generator, so every
    #: epoch reads the same augmented rows (as from a cached split).
    streamed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record (``streamed`` only when true)."""
        record = {"name": self.name, "rows_in": self.rows_in, "rows_out": self.rows_out, "produced": self.produced,
                  "examples": self.examples}
        return {**record, "streamed": True} if self.streamed else record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> AugmentationSummary:
        return cls(str(record["name"]), int(record["rows_in"]), int(record["rows_out"]), int(record["produced"]),
                   list(record.get("examples") or []), bool(record.get("streamed", False)))

    def line(self) -> str:
        """``name: rows in -> rows out (+produced)``, as the run's plan prints it."""
        counted = ", counted over the stream's first rows" if self.streamed else ""
        return f"{self.name}: {self.rows_in:,} -> {self.rows_out:,} (+{self.produced:,}){counted}"

    def add(self, rows_in: int, rows_out: int, produced: Rows, originals: list[dict[str, Any]] | None) -> None:
        """Count one chunk's step; keep examples from ``produced`` while fewer than ``EXAMPLES`` are kept (none
        without ``originals``, the chunk's rows as they were before the chain)."""
        self.rows_in += rows_in
        self.rows_out += rows_out
        self.produced += len(produced)
        if originals is None:
            return
        for row in produced:
            if len(self.examples) >= EXAMPLES:
                break
            pair = example(row, originals)
            if pair is not None:
                self.examples.append(pair)


def fields(row: dict[str, Any]) -> dict[str, Any]:
    """What an example shows of a row; lists copied, so a later step cannot change an example kept."""
    return {k: list(row[k]) if isinstance(row[k], list) else row[k] for k in EXAMPLE_FIELDS if k in row}


def example(row: dict[str, Any], originals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row beside the one it came from (by ``_origin``); None when that is unknown (an augmentation that built
    the row without copying one) or when the two look the same (a swap of two equal words shows nothing)."""
    origin = row.get(ORIGIN)
    if not isinstance(origin, int) or not 0 <= origin < len(originals):
        return None
    augmented = fields(row)
    return None if augmented == originals[origin] else {"original": originals[origin], "augmented": augmented}


def as_tokens(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the ``tokens`` shape as augmentations get it: ``text`` and ``label`` lists (one tag per word), each
    split at white space where the file gave a string (a tagging task reads both forms alike). Without this, an
    augmentation could not tell a tagging row written as strings from a text with a one-word label, and would edit
    its words as plain text, leaving the tags on other words."""
    text, label = row.get("text"), row.get("label")
    if not isinstance(text, str) and not isinstance(label, str):
        return row
    row = dict(row)  # the split's own rows stay as they are (an in-memory split hands out its dicts)
    if isinstance(text, str):
        row["text"] = text.split()
    if isinstance(label, str):
        row["label"] = label.split()
    return row


def mark(inputs: Rows, outputs: Rows, name: str) -> Rows:
    """The rows a step produced, marked ``_augmented``: every output that is not one of its input rows, and every
    repeat of one beyond the times it was given (an input returned twice is one kept and one produced, though only
    a copy can carry the mark)."""
    given = Counter(id(row) for row in inputs)
    left = given.copy()
    produced = []
    for row in outputs:
        if not isinstance(row, dict):
            raise EngineError(f"augmentation {name!r} returned {type(row).__name__} {row!r:.80} among its rows; an "
                              "augmentation returns rows as dicts")
        if left[id(row)] > 0:
            left[id(row)] -= 1
            continue
        produced.append(row)
        if id(row) not in given:
            row.setdefault(AUGMENTED, name)
    return produced


def run_chain(rows: Rows, rng: random.Random, steps: Sequence[tuple[str, Augmentation]],
              summaries: list[AugmentationSummary] | None = None) -> Rows:
    """One chunk's rows through the named augmentations, in order, under the row conventions (module docstring);
    each step counted into its summary when ``summaries`` is given. The rows come back without the private keys."""
    for index, row in enumerate(rows):
        row[ORIGIN] = index
    wanted = summaries is not None and any(len(s.examples) < EXAMPLES for s in summaries)
    originals = [fields(row) for row in rows] if wanted else None
    for step, (name, apply) in enumerate(steps):
        out = list(apply(rows, rng))
        produced = mark(rows, out, name)
        if summaries is not None:
            summaries[step].add(len(rows), len(out), produced, originals)
        rows = out
    for row in rows:
        for key in PRIVATE:
            row.pop(key, None)
    return rows
