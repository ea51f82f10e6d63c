"""What a data format hands the engine: named splits of rows, each split an Arrow table that knows its source.

Rows live in Arrow (``datasets.Dataset``, memory-mapped from a file in the cache) rather than in Python objects,
so a split of ten million rows costs disk, not memory, and every process of a node maps the same file. A row is a
dict with the standard columns (``text``, ``text_pair``, ``label``) and ``_line``, its line in the source file.

Columns whose values are all strings (or all lists of strings) are stored as such; any other column (numbers,
numbers and strings mixed, nested values) is stored as JSON text under ``NAME:json`` and decoded on the way out, so
a format never has to declare types and a row reads back as it was written.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine.errors import DataError

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

    from engine.data.augmentation import AugmentationSummary

SPLITS = ("train", "validation", "test")
LINE = "_line"  # the row's line (or record) number in its source file, for messages
JSON = ":json"  # suffix of a column stored as JSON text
CHUNK = 10_000  # rows per Arrow record batch written


class DataOptions(BaseModel):
    """Keys every data format shares; a format's options model subclasses this one."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = Field(None, description="Data format; default: from the training file's extension.")
    train: str | None = Field(None, description="Training data: a file, or a folder for directory formats.")
    validation: str | None = Field(None, description="Validation data, evaluated after every epoch.")
    test: str | None = Field(None, description="Test data, evaluated once at the end with the best model.")
    encoding: str = Field("utf-8", description="Text encoding of the files, e.g. 'latin-1'.")
    labels_required: bool = Field(True, description="False when reading inputs to predict: labels may be absent.")
    streaming: bool = Field(
        False, description="Read the training data as a stream while training (data larger than memory or disk); "
        "needs training.max_steps. Validation and test data are read whole."
    )
    fit_rows: int = Field(
        100_000, ge=1, description="Streaming: rows read before training to learn the labels (or other statistics) "
        "the task needs; a label first seen later stops the run with its line."
    )
    num_proc: int | None = Field(
        None, ge=1, description="Processes that tokenize; default: one per CPU core (at most 8) for large splits."
    )
    benchmark: str | None = Field(
        None, description="The public benchmark this data is (e.g. 'sst2', 'stsb', 'conll2003'): the run prints "
        "published scores on it beside its own (a task's known ones; a name it does not know prints which it knows)."
    )
    validation_split: float | None = Field(
        None, gt=0, lt=1, description="Hold out this share of the training rows as validation data (seeded by "
        "training.seed), for data without a validation file."
    )

    @field_validator("validation_split")
    @classmethod
    def _one_validation(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("validation"):
            raise ValueError("data.validation names a validation file already; set one of the two")
        if value is not None and info.data.get("streaming"):
            raise ValueError("a streamed training file cannot be split; give a validation file instead")
        return value

    def files(self) -> dict[str, str]:
        return {name: value for name in SPLITS if (value := getattr(self, name))}


# Options that say which files and how to deliver their rows (or what the data is called), not what the rows are: not
# part of a cache key, and not carried over when `engine predict` reads its input the way the training data was read.
DELIVERY = {*SPLITS, "streaming", "fit_rows", "num_proc", "validation_split", "benchmark"}


class Split:
    """One split's rows, where they came from, and facts a format adds for the task (``info``).

    ``rows`` may be given as a list of dicts (converted to Arrow here), a ``datasets.Dataset``, or, for a streamed
    split, a ``datasets.IterableDataset``. ``fingerprint`` identifies the content (a format that knows its files
    gives one); features of a split with a fingerprint are cached between runs.
    """

    def __init__(self, name: str, rows: Any, source: str, info: dict[str, Any] | None = None, *,
                 fingerprint: str | None = None) -> None:
        self.name, self.source, self.info, self.fingerprint = name, source, dict(info or {}), fingerprint
        self.data: Any = rows_to_dataset(rows, source) if isinstance(rows, list) else rows
        #: What each augmentation did to make these rows (``engine.data.features.augment``); [] for rows as read.
        self.augmentation: list[AugmentationSummary] = []

    @property
    def streaming(self) -> bool:
        return not hasattr(self.data, "num_rows")

    def __len__(self) -> int:
        if self.streaming:
            raise TypeError(f"the {self.name} split is streamed: its length is not known")
        return int(self.data.num_rows)

    @property
    def rows(self) -> Rows:
        """The rows as dicts, decoded (a read-only sequence; prefer ``batches`` for whole passes)."""
        return Rows(self)

    @property
    def columns(self) -> list[str]:
        return [name.removesuffix(JSON) for name in self.data.column_names or []]

    def batches(self, columns: Sequence[str] | None = None, size: int = 1000) -> Iterator[dict[str, list[Any]]]:
        """``{column: values}`` batches over the whole split, decoded, in order (of the ``columns`` it has)."""
        stored = self.data.column_names or []
        wanted = None if columns is None else [c + JSON if c + JSON in stored else c for c in columns if
                                               c in stored or c + JSON in stored]
        data = self.data if wanted is None else self.data.select_columns(wanted)
        for batch in data.iter(batch_size=size):
            yield decode_batch(batch)

    def values(self, *names: str) -> Iterator[tuple[Any, ...]]:
        """``(value, ..., line)`` of the named columns over the whole split, in order; None where a row (or the
        split) has no value. ``split.values("label")`` gives ``(label, line)`` pairs."""
        wanted = [name for name in (*names, LINE) if name in self.columns]
        if not wanted:
            yield from ((None,) * (len(names) + 1) for _ in range(len(self)))
            return
        for batch in self.batches(wanted, size=CHUNK):
            n = len(batch[wanted[0]])
            yield from zip(*(batch.get(name, [None] * n) for name in (*names, LINE)))

    def where(self, index: int) -> tuple[str, int | None]:
        """(file, line) of a row, for error messages."""
        return self.source, self.rows[index].get(LINE)

    def head(self, n: int) -> Split:
        """The first ``n`` rows, in memory (how a stream is fitted)."""
        return self.with_rows(rows_to_dataset(islice(self.rows, n), self.source))

    def with_rows(self, rows: Any, fingerprint: str | None = None) -> Split:
        """This split (name, source, info) with other rows: an augmented copy, a prefix."""
        return Split(self.name, rows, self.source, self.info, fingerprint=fingerprint)


class Rows(Sequence[dict[str, Any]]):
    """A split's rows as decoded dicts, read from Arrow on demand."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return rows_of(decode_batch(self.split.data[index]))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self[index : index + 1][0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.split.batches(size=CHUNK):
            yield from rows_of(batch)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, Rows)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


# --- Arrow encoding of rows -------------------------------------------------------------------------------------


def decode_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {(k[: -len(JSON)] if k.endswith(JSON) else k): ([_loads(v) for v in vs] if k.endswith(JSON) else list(vs))
            for k, vs in batch.items()}


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def rows_of(batch: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Columns to rows; a row leaves out the columns it has no value in (as the format wrote it)."""
    keys = list(batch)
    return [{k: v for k, v in zip(keys, values) if v is not None} for values in zip(*batch.values())]


def _kind(values: Iterable[Any]) -> str:
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        return "text"
    if all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in present):
        return "texts"
    return "json"


_KIND_NAMES = {"text": "a string", "texts": "a list of strings", "json": "a value"}


class RowEncoder:
    """Rows to Arrow columns, chunk by chunk, with each column's type set by the first chunk (see the module
    docstring); a later row that does not fit is a DataError at its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.kinds: dict[str, str] = {}

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        types = {"line": pa.int64(), "text": pa.string(), "texts": pa.list_(pa.string()), "json": pa.string()}
        return pa.schema([(name + (JSON if kind == "json" else ""), types[kind]) for name, kind in self.kinds.items()])

    def encode(self, rows: list[dict[str, Any]]) -> pa.Table:
        import pyarrow as pa

        if not self.kinds:
            names: dict[str, None] = {}
            for row in rows:
                names.update(dict.fromkeys(row))
            self.kinds = {name: ("line" if name == LINE else _kind(row.get(name) for row in rows)) for name in names}
        for row in rows:
            extra = set(row) - set(self.kinds)
            if extra:
                raise DataError(f"has {', '.join(map(repr, sorted(extra)))}, which earlier rows do not have",
                                self.source, row.get(LINE))
        columns = []
        for name, kind in self.kinds.items():
            values = [row.get(name) for row in rows]
            if kind == "json":
                values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
            elif kind != "line" and _kind(values) != kind:
                bad = next(i for i, v in enumerate(values) if v is not None and _kind([v]) != kind)
                raise DataError(f"{name!r} is {values[bad]!r}, but earlier rows have {_KIND_NAMES[kind]} there",
                                self.source, rows[bad].get(LINE))
            columns.append(values)
        schema = self.schema()
        return pa.table([pa.array(values, field.type) for values, field in zip(columns, schema)], schema=schema)


def chunks(rows: Iterable[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def rows_to_dataset(rows: Iterable[dict[str, Any]], source: str, path: Path | None = None) -> datasets.Dataset:
    """Rows (dicts) as an Arrow-backed dataset: in memory, or written to ``path`` chunk by chunk and memory-mapped."""
    import datasets
    import pyarrow as pa

    encoder = RowEncoder(source)
    tables = (encoder.encode(chunk) for chunk in chunks(rows))
    if path is None:
        parts = list(tables)
        table = pa.concat_tables(parts) if parts else pa.table({LINE: pa.array([], pa.int64())})
        # A fingerprint of its own: without one, datasets hashes the whole table (4 ms for a row, a request's cost
        # at a server). Rows in memory are never cached by it (the engine's cache keys on Split.fingerprint).
        return datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=uuid.uuid4().hex)
    from datasets.arrow_writer import ArrowWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with ArrowWriter(path=str(path)) as writer:
        empty = True
        for table in tables:
            writer.write_table(table)
            empty = False
        if empty:
            writer.write_table(pa.table({LINE: pa.array([], pa.int64())}))
        writer.finalize()
    return datasets.Dataset.from_file(str(path))


def cached_rows(key: str, source: str, rows: Callable[[], Iterable[dict[str, Any]]]) -> datasets.Dataset:
    """The rows ``rows()`` gives, written once to the data cache under ``key`` and memory-mapped from there."""
    from engine.data import cache

    def write(folder: Path) -> dict[str, Any]:
        return {"source": source, "rows": rows_to_dataset(rows(), source, folder / "rows.arrow").num_rows}

    return cache.load(cache.lookup("rows", key) or cache.build("rows", key, write), "rows")


def stream_rows(source: str, rows: Callable[[], Iterable[dict[str, Any]]]) -> datasets.IterableDataset:
    """A streamed split: ``rows()`` is called for every pass and read lazily, ``CHUNK`` rows at a time. The
    columns' types come from the first chunk, read once here."""
    import datasets

    encoder = RowEncoder(source)
    first = next(chunks(rows()), [])
    encoder.encode(first)
    features = datasets.Features.from_arrow_schema(encoder.schema())

    def generate() -> Iterator[dict[str, Any]]:
        for chunk in chunks(rows()):
            yield from encoder.encode(chunk).to_pylist()

    return datasets.IterableDataset.from_generator(generate, features=features)


def resolve_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def hold_out(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """``split`` cut in two at random (seeded): the rest, and ``fraction`` of its rows (at least one) as the
    validation split. Rows keep their order and their lines."""
    import numpy as np

    n = len(split)
    count = max(1, round(n * fraction))
    if count >= n:
        raise DataError(f"data.validation_split={fraction} of {n} row(s) leaves none to train on", split.source)
    order = np.random.default_rng(seed).permutation(n)
    held, kept = np.sort(order[:count]), np.sort(order[count:])

    def part(name: str, indices: Any) -> Split:
        from engine.data import cache

        fingerprint = (None if split.fingerprint is None
                       else cache.fingerprint("held_out", split.fingerprint, name, fraction, seed))
        return Split(name, split.data.select(indices), split.source, split.info, fingerprint=fingerprint)

    return part("train", kept), part("validation", held)
