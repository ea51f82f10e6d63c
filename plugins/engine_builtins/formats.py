"""Data formats: CSV, TSV, JSONL, and `datasets` folders (save_to_disk) or hub ids.

Text files may be gzip, bzip2 or xz compressed (``train.tsv.gz``): told by their first bytes and read as they are.

Every format produces rows with the standard columns ``text`` (and ``text_pair`` for a pair of texts) and
``label``, plus the row's line number, so any error later can point into the file.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import zlib
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from engine import LINE, DataError, DataOptions, Register, Split, hookimpl
from engine.data import cache
from engine.data.split import DELIVERY, cached_rows, resolve_path, stream_rows
from engine.errors import did_you_mean


class ColumnOptions(DataOptions):
    """Which columns (or keys) hold the text and the label: what every built-in format reads."""

    text: str | list[str] = Field("text", description="Column of the text, or two columns for a text pair.")
    label: str | list[str] | None = Field(
        "label", description="Column of the label (or several targets); null for none.")

    @field_validator("text")
    @classmethod
    def _one_or_two(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= 2:
            raise ValueError(f"expected one text column or two (a pair), got {len(value)}")
        return value

    def text_columns(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    def label_columns(self) -> list[str]:
        if self.label is None:
            return []
        return [self.label] if isinstance(self.label, str) else list(self.label)


class TableOptions(ColumnOptions):
    header: bool = Field(True, description="Whether the first line names the columns.")
    columns: list[str] | None = Field(None, description="Column names, for files without a header line.")


class CsvOptions(TableOptions):
    delimiter: str = Field(",", min_length=1, max_length=1, description="The one character between fields.")


class JsonlOptions(ColumnOptions):
    text: str | list[str] = Field("text", description="Key of the text (a string, or a list of tokens), or two keys.")
    label: str | list[str] | None = Field("label", description="Key of the label (or several targets).")


class DatasetsOptions(ColumnOptions):
    path: str = Field(description="A folder written by datasets' save_to_disk, or a hub id (needs network).")
    train: str | None = Field("train", description="Name of the training split in the dataset.")
    validation: str | None = Field("validation", description="Name of the validation split, if it has one.")
    test: str | None = Field("test", description="Name of the test split, if it has one.")


# --- reading -----------------------------------------------------------------------------------------------------


# Compressed files are told by their first bytes, whatever their name: gzip, bzip2 and xz are read as they are.
MAGIC = {b"\x1f\x8b\x08": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip",
         b"\x28\xb5\x2f\xfd": "zstd"}
DECOMPRESS: dict[str, Callable[[Path], io.BufferedIOBase]] = {"gzip": gzip.GzipFile, "bzip2": bz2.BZ2File,
                                                       "xz": lzma.LZMAFile}
# What a damaged compressed stream raises as it is read.
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression(path: Path) -> str | None:
    """The compression a file's first bytes show (``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zip"``, ``"zstd"``), or
    None for a plain file."""
    with path.open("rb") as file:
        start = file.read(10)
    for magic, name in MAGIC.items():
        # bzip2's magic is letters: its level digit and block magic follow, which no text starts with.
        if start.startswith(magic) and (name != "bzip2" or (start[3:4].isdigit() and start[4:] == b"1AY&SY")):
            return name
    return None


def read_lines(path: Path, encoding: str, what: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a text file (gzip, bzip2 or xz compressed or not), read lazily, with its line
    ending; an undecodable byte, or a compressed file cut short, is a DataError at its line."""
    if not path.is_file():
        raise DataError(f"{what}: {'no such file' if not path.exists() else 'not a file'}: {path}")
    try:
        ascii_compatible = "\n".encode(encoding) == b"\n"
    except LookupError:
        raise DataError(f"data.encoding: unknown text encoding {encoding!r}", path) from None
    kind = compression(path)
    if kind is not None and kind not in DECOMPRESS:
        raise DataError(f"is a {kind} archive, which engine does not read: unpack it and name the file inside "
                        "(gzip, bzip2 and xz files are read as they are)", path)
    number = 0
    try:
        with path.open("rb") if kind is None else DECOMPRESS[kind](path) as file:
            if not ascii_compatible:  # UTF-16 and the like: lines cannot be split as bytes
                data = file.read()
                try:
                    text = data.decode(encoding, errors="strict").removeprefix("\ufeff")
                except UnicodeDecodeError as exc:
                    raise DataError(f"cannot decode byte 0x{data[exc.start]:02x} as {encoding}; set data.encoding "
                                    "(e.g. \"utf-8\")", path,
                                    data[: exc.start].decode(encoding, "replace").count("\n") + 1) from None
                lines = text.split("\n")  # not splitlines(): \x1c-\x1e, \x85 and \u2028 are characters in a field
                yield from enumerate([line + "\n" for line in lines[:-1]] + lines[-1:], start=1)
                return
            for number, raw in enumerate(file, start=1):
                try:
                    line = raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    raise DataError(f"cannot decode byte 0x{raw[exc.start]:02x} as {encoding}; set data.encoding "
                                    "(e.g. \"latin-1\")", path, number) from None
                yield number, (line.removeprefix("\ufeff") if number == 1 else line)
    except DECOMPRESSION_ERRORS as exc:
        if kind is None:
            raise
        raise DataError(f"the {kind} data is damaged or cut short here: {exc}", path, number + 1) from None


def make_row(record: dict[str, Any], options: Any, path: Path, line: int) -> dict[str, Any]:
    """The standard columns from one record of a file, with clear errors for what is missing or empty."""
    row: dict[str, Any] = {LINE: line}
    for key, column in zip(("text", "text_pair"), options.text_columns()):
        value = record.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            what = f"empty text in column {column!r}" if column in record else f"missing text column {column!r}"
            raise DataError(what, path, line)
        row[key] = value
    labels = options.label_columns()
    values: list[Any] = []
    for column in labels:
        value = record.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            if options.labels_required:
                what = "empty label" if column in record else "missing label"
                raise DataError(f"{what} in column {column!r}", path, line)
            values = []
            break
        values.append(value.strip() if isinstance(value, str) else value)
    if values:
        row["label"] = values[0] if isinstance(options.label, str) else values
    return row


def check_columns(available: list[str], options: Any, path: Path, labelled: bool) -> None:
    wanted = options.text_columns() + (options.label_columns() if labelled else [])
    for column in wanted:
        if column not in available:
            raise DataError(
                f"no column {column!r}{did_you_mean(column, available)}; the columns are: "
                f"{', '.join(map(repr, available))}" + ("" if options.header else " (set by data.columns)"),
                path, 1 if getattr(options, "header", True) else None,
            )


def read_table(path: Path, options: TableOptions, delimiter: str, quoting: int, what: str) -> Iterator[dict[str, Any]]:
    lines = read_lines(path, options.encoding, what)
    if quoting == csv.QUOTE_NONE:
        # TSV: a tab separates fields and nothing else is special, so quote characters inside fields stay as they are.
        records: Iterator[tuple[int, list[str]]] = (
            (i, line.rstrip("\n").removesuffix("\r").split(delimiter)) for i, line in lines if line.strip()
        )
    else:
        records = _csv_records(lines, delimiter, path)
    header = options.columns
    if header is not None:
        check_columns(header, options, path, options.labels_required)
    for line, fields in records:
        if header is None:
            if not options.header:
                raise DataError("data.header is false, so data.columns must name the columns", path)
            header = [f.strip() for f in fields]
            check_columns(header, options, path, options.labels_required)
            continue
        if len(fields) != len(header):
            raise DataError(
                f"expected {len(header)} fields separated by {delimiter!r} ({', '.join(header)}), got {len(fields)}",
                path, line
            )
        yield make_row(dict(zip(header, fields)), options, path, line)


def _csv_records(lines: Iterator[tuple[int, str]], delimiter: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader((line for _, line in lines), delimiter=delimiter, quotechar='"', strict=True)
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path, reader.line_num) from None


def read_jsonl(path: Path, options: Any, what: str) -> Iterator[dict[str, Any]]:
    for i, line in read_lines(path, options.encoding, what):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, i) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object per line, got {type(record).__name__}", path, i)
        yield make_row(record, options, path, i)


def load_files(options: Any, base_dir: Path, reader: Callable[[Path, str], Iterable[dict[str, Any]]],
               info: dict[str, Any] | None = None) -> dict[str, Split]:
    """Each split the options name, its rows from ``reader(path, what)``: written once to the data cache and
    memory-mapped from there (again by later runs, while the file is unchanged), or streamed when
    ``data.streaming`` is set (the training split). ``info`` goes with every split."""
    splits = {}
    for name, value in options.files().items():
        path = resolve_path(value, base_dir)
        what = f"data.{name}"
        key = cache.fingerprint("rows", type(options).__qualname__, options.model_dump(exclude=DELIVERY),
                                cache.file_fingerprint(path))
        deliver = stream_rows if name == "train" and options.streaming else partial(cached_rows, key)
        splits[name] = Split(name, deliver(str(path), partial(reader, path, what)), str(path), dict(info or {}),
                             fingerprint=key)
    return splits


def column_info(options: Any) -> dict[str, Any]:
    """Which columns the standard ones came from, for tasks that name things after them (regression targets)."""
    return {"text_columns": options.text_columns(), "label_columns": options.label_columns()}


# --- the components ----------------------------------------------------------------------------------------------


def load_tsv(options: TableOptions, base_dir: Path) -> dict[str, Split]:
    """Tab-separated values; quote characters are ordinary characters."""
    return load_files(options, base_dir, lambda p, w: read_table(p, options, "\t", csv.QUOTE_NONE, w),
                      column_info(options))


def load_csv(options: CsvOptions, base_dir: Path) -> dict[str, Split]:
    """Comma-separated values with standard quoting."""
    return load_files(options, base_dir, lambda p, w: read_table(p, options, options.delimiter, csv.QUOTE_MINIMAL, w),
                      column_info(options))


def load_jsonl(options: JsonlOptions, base_dir: Path) -> dict[str, Split]:
    """One JSON object per line."""
    return load_files(options, base_dir, lambda p, w: read_jsonl(p, options, w), column_info(options))


def load_datasets(options: DatasetsOptions, base_dir: Path) -> dict[str, Split]:
    """A folder saved with datasets' save_to_disk, or a hub id."""
    import datasets

    local = resolve_path(options.path, base_dir)
    try:
        data = (datasets.load_from_disk(str(local)) if local.exists() else
                datasets.load_dataset(options.path, streaming=options.streaming))
    except Exception as exc:  # datasets raises many kinds; all mean the same to the user
        raise DataError(f"data.path: cannot load a dataset from {options.path!r}: {exc}", local) from None
    if isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
        data = {"train": data}
    origin = cache.file_fingerprint(local) if local.exists() else {"hub": options.path}
    splits = {}
    for name in ("train", "validation", "test"):
        wanted = getattr(options, name)
        if wanted is None or wanted not in data:
            if wanted is not None and name == "train":
                raise DataError(f"data.train: no split {wanted!r}; the dataset has: {', '.join(data)}", local)
            continue
        ds = data[wanted]
        check_columns(list(ds.column_names or ds.features or []), options, local, options.labels_required)
        source = f"{local}[{wanted}]"
        key = cache.fingerprint("rows", "datasets", options.model_dump(exclude=DELIVERY), origin, wanted)
        deliver = stream_rows if name == "train" and options.streaming else partial(cached_rows, key)
        splits[name] = Split(name, deliver(source, partial(_dataset_rows, ds, options, local)), source,
                             column_info(options), fingerprint=key)
    return splits


def _dataset_rows(ds: Any, options: DatasetsOptions, local: Path) -> Iterator[dict[str, Any]]:
    """The standard columns of a dataset's records; class labels by name."""
    import datasets

    names = {column: feature.names for column in options.label_columns()
             if isinstance(feature := (ds.features or {}).get(column), datasets.ClassLabel)}
    for i, record in enumerate(ds):
        record = {k: (names[k][v] if k in names and isinstance(v, int) and v >= 0 else v) for k, v in record.items()}
        yield make_row(record, options, local, i + 1)


@hookimpl
def load_data(register: Register) -> None:
    register("tsv", load_tsv, options=TableOptions)
    register("csv", load_csv, options=CsvOptions)
    register("jsonl", load_jsonl, options=JsonlOptions)
    register("datasets", load_datasets, options=DatasetsOptions)
