"""Data formats: CSV, TSV, JSONL, and `datasets` folders (save_to_disk) or hub ids.

Every format produces rows with the standard columns ``text`` (and ``text_pair`` for a pair of texts) and
``label``, plus the row's line number, so any error later can point into the file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import Field, field_validator

from engine import LINE, DataError, DataOptions, Split, hookimpl
from engine.data import resolve_path
from engine.errors import did_you_mean


class TableOptions(DataOptions):
    text: str | list[str] = Field("text", description="Column of the text, or two columns for a text pair.")
    label: str | list[str] | None = Field("label", description="Column of the label (or several targets); null for none.")
    header: bool = Field(True, description="Whether the first line names the columns.")
    columns: list[str] | None = Field(None, description="Column names, for files without a header line.")

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


class CsvOptions(TableOptions):
    delimiter: str = Field(",", min_length=1, max_length=1)


class JsonlOptions(DataOptions):
    text: str | list[str] = Field("text", description="Key of the text (a string, or a list of tokens), or two keys.")
    label: str | list[str] | None = Field("label", description="Key of the label (or several targets).")

    text_columns = TableOptions.text_columns
    label_columns = TableOptions.label_columns


class DatasetsOptions(DataOptions):
    path: str = Field(description="A folder written by datasets' save_to_disk, or a hub id (needs network).")
    text: str | list[str] = "text"
    label: str | list[str] | None = "label"
    train: str | None = Field("train", description="Name of the training split in the dataset.")
    validation: str | None = Field("validation", description="Name of the validation split, if it has one.")
    test: str | None = Field("test", description="Name of the test split, if it has one.")

    text_columns = TableOptions.text_columns
    label_columns = TableOptions.label_columns


# --- reading -----------------------------------------------------------------------------------------------------


def read_text(path: Path, encoding: str, what: str) -> str:
    if not path.is_file():
        raise DataError(f"{what}: {'no such file' if not path.exists() else 'not a file'}: {path}")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except LookupError:
        raise DataError(f"data.encoding: unknown text encoding {encoding!r}", path) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"cannot decode byte 0x{data[exc.start]:02x} as {encoding}; set data.encoding (e.g. \"latin-1\")", path, line
        ) from None
    return text.removeprefix("\ufeff")


def make_row(record: dict[str, Any], options: Any, path: Path, line: int) -> dict[str, Any]:
    """The standard columns from one record of a file, with clear errors for what is missing or empty."""
    row: dict[str, Any] = {LINE: line}
    for key, column in zip(("text", "text_pair"), options.text_columns()):
        value = record.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"empty text in column {column!r}" if column in record else f"missing text column {column!r}", path, line)
        row[key] = value
    labels = options.label_columns()
    values = []
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
                f"no column {column!r}{did_you_mean(column, available)}; the columns are: {', '.join(map(repr, available))}"
                + ("" if options.header else " (set by data.columns)"), path, 1 if getattr(options, "header", True) else None,
            )


def read_table(path: Path, options: TableOptions, delimiter: str, quoting: int, what: str) -> list[dict[str, Any]]:
    text = read_text(path, options.encoding, what)
    lines = text.split("\n")
    if quoting == csv.QUOTE_NONE:
        # TSV: a tab separates fields and nothing else is special, so quote characters inside fields stay as they are.
        records: Iterator[tuple[int, list[str]]] = (
            (i + 1, line.removesuffix("\r").split(delimiter)) for i, line in enumerate(lines) if line.strip()
        )
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
        records = _csv_records(reader, path)
    rows = []
    header = options.columns
    for line, fields in records:
        if header is None:
            if not options.header:
                raise DataError("data.header is false, so data.columns must name the columns", path)
            header = [f.strip() for f in fields]
            check_columns(header, options, path, options.labels_required)
            continue
        if len(rows) == 0 and options.columns is not None:
            check_columns(header, options, path, options.labels_required)
        if len(fields) != len(header):
            raise DataError(
                f"expected {len(header)} fields separated by {delimiter!r} ({', '.join(header)}), got {len(fields)}", path, line
            )
        rows.append(make_row(dict(zip(header, fields)), options, path, line))
    return rows


def _csv_records(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path, reader.line_num) from None


def read_jsonl(path: Path, options: Any, what: str) -> list[dict[str, Any]]:
    text = read_text(path, options.encoding, what)
    rows = []
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, i) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object per line, got {type(record).__name__}", path, i)
        rows.append(make_row(record, options, path, i))
    return rows


def load_files(options: Any, base_dir: Path, reader: Callable[[Path, str], list[dict[str, Any]]],
               info: dict[str, Any] | None = None) -> dict[str, Split]:
    """Each split the options name, read from its file by ``reader(path, what)``; ``info`` goes with every split."""
    splits = {}
    for name, value in options.files().items():
        path = resolve_path(value, base_dir)
        splits[name] = Split(name, reader(path, f"data.{name}"), str(path), dict(info or {}))
    return splits


def column_info(options: Any) -> dict[str, Any]:
    """Which columns the standard ones came from, for tasks that name things after them (regression targets)."""
    return {"text_columns": options.text_columns(), "label_columns": options.label_columns()}


# --- the components ----------------------------------------------------------------------------------------------


def load_tsv(options: TableOptions, base_dir: Path) -> dict[str, Split]:
    """Tab-separated values; quote characters are ordinary characters."""
    return load_files(options, base_dir, lambda p, w: read_table(p, options, "\t", csv.QUOTE_NONE, w), column_info(options))


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
        data = datasets.load_from_disk(str(local)) if local.exists() else datasets.load_dataset(options.path)
    except Exception as exc:  # datasets raises many kinds; all mean the same to the user
        raise DataError(f"data.path: cannot load a dataset from {options.path!r}: {exc}", local) from None
    if isinstance(data, datasets.Dataset):
        data = datasets.DatasetDict({"train": data})
    splits = {}
    for name in ("train", "validation", "test"):
        wanted = getattr(options, name)
        if wanted is None or wanted not in data:
            if wanted is not None and name == "train":
                raise DataError(f"data.train: no split {wanted!r}; the dataset has: {', '.join(data)}", local)
            continue
        ds = data[wanted]
        check_columns(list(ds.column_names), options, local, options.labels_required)
        names = {}
        for column in options.label_columns():
            feature = ds.features[column]
            if isinstance(feature, datasets.ClassLabel):
                names[column] = feature.names
        rows = []
        for i, record in enumerate(ds):
            record = {k: (names[k][v] if k in names and isinstance(v, int) and v >= 0 else v) for k, v in record.items()}
            rows.append(make_row(record, options, local, i + 1))
        splits[name] = Split(name, rows, f"{local}[{wanted}]", column_info(options))
    return splits


@hookimpl
def load_data(register: Any) -> None:
    register("tsv", load_tsv, options=TableOptions)
    register("csv", load_csv, options=CsvOptions)
    register("jsonl", load_jsonl, options=JsonlOptions)
    register("datasets", load_datasets, options=DatasetsOptions)
