"""Inputs given in memory (by Python code, or a server's request) as the split `engine predict` reads from a file:
rows with the standard columns (``text``, ``text_pair``, ``label``) and a ``_line`` (the input's position, from 1).

What may come, for a model ``loaded``:

- one text (``str``), or a pair of texts as a tuple ``(text, text_pair)``;
- for a task whose labels go word by word (``Task.labels_per_word``), a list of tokens ``["paul", "is", "in"]``
  inside a list of inputs (a bare list of strings is always several texts);
- a mapping (a dict, a DataFrame's row as a Series) with the columns the training data had (the options ``text``
  and ``label`` of its format, which the model's ``engine.json`` records, as the built-in formats name them), or
  the standard names;
- a list of any of these, or a pandas DataFrame (one input per row).

The rows have no fingerprint, so their features are never written to the data cache.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.data.split import LINE, Split
from engine.errors import DataError, EngineError, did_you_mean
from engine.inference.loading import LoadedModel

SOURCE = "inputs"  # the split's source in messages: "inputs, line 3: ..." (line: the input's position, from 1)
TEXT, PAIR, LABEL = "text", "text_pair", "label"


def is_one_input(inputs: Any) -> bool:
    """Whether ``inputs`` is one input (a text, a pair, a mapping or a DataFrame's row), answered with one record,
    rather than several."""
    return isinstance(inputs, (str, tuple, Mapping)) or _pandas(inputs) == "Series"


def split_of_inputs(loaded: LoadedModel, inputs: Any, *, labelled: bool = False) -> Split:
    """``inputs`` (see the module's docstring) as a split, one row per input, in order; ``labelled``: each input
    must carry its label (in the label column), for scoring. A DataError names the input that does not fit."""
    columns = Columns.of(loaded)
    word_level = bool(getattr(loaded.task, "labels_per_word", False))
    if _pandas(inputs) == "DataFrame":
        columns.check_table([str(c) for c in inputs.columns], labelled)
        items: Sequence[Any] = inputs.to_dict("records")
    elif _pandas(inputs) == "Series":
        items = [inputs.to_dict()]
    elif is_one_input(inputs):
        items = [inputs]
    elif isinstance(inputs, Iterable) and not isinstance(inputs, (bytes, bytearray)):
        items = list(inputs)
    else:
        raise EngineError(f"expected a text, a (text, text_pair) tuple, a mapping of columns, a list of these or a "
                          f"pandas DataFrame; got {type(inputs).__name__}")
    if not items:
        raise EngineError("no inputs: give at least one text")
    rows = [columns.row(item, n, labelled=labelled, word_level=word_level and not is_one_input(inputs))
            for n, item in enumerate(items, start=1)]
    return Split("input", rows, SOURCE, {"text_columns": columns.text, "label_columns": columns.label})


class Columns:
    """Where a mapping's text and label are: the training data's columns (its format's ``text`` and ``label``
    options), or the standard names."""

    def __init__(self, text: list[str], label: list[str], label_is_list: bool, pairs: bool | None) -> None:
        self.text, self.label, self.label_is_list = text, label, label_is_list
        self.pairs = pairs  # whether the model reads pairs of texts; None: not known

    @classmethod
    def of(cls, loaded: LoadedModel) -> Columns:
        options = loaded.data.options if loaded.data is not None else None
        text = getattr(options, "text", None)
        label = getattr(options, "label", LABEL)
        texts = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else [TEXT]
        labels = [label] if isinstance(label, str) else list(label) if isinstance(label, (list, tuple)) else []
        return cls(texts, labels, isinstance(label, (list, tuple)), None if text is None else len(texts) == 2)

    def check_table(self, available: list[str], labelled: bool) -> None:
        """A DataFrame's columns hold what the model reads (and the labels, when ``labelled``)."""
        wanted = list(zip((TEXT, PAIR), self.text))
        if labelled:
            wanted += [(LABEL, column) for column in self.label or [LABEL]]
        for standard, column in wanted:
            if column not in available and standard not in available:
                raise DataError(f"no column {column!r}{did_you_mean(column, available)}; the columns are: "
                                f"{', '.join(map(repr, available))}", SOURCE)

    def row(self, item: Any, n: int, *, labelled: bool, word_level: bool) -> dict[str, Any]:
        """The standard row of input ``n`` (from 1)."""
        if isinstance(item, Mapping):
            row = self.mapping_row(item, n, labelled)
        elif labelled:
            raise DataError(f"to score, each input needs its label: give mappings (or a DataFrame) with the columns "
                            f"{', '.join(map(repr, [*self.text, *(self.label or [LABEL])]))}; got "
                            f"{type(item).__name__}", SOURCE, n)
        elif isinstance(item, str):
            row = {TEXT: item}
        elif isinstance(item, (list, tuple)) and word_level and all(isinstance(t, str) for t in item):
            row = {TEXT: list(item)}
        elif isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(t, str) for t in item):
            row = {TEXT: item[0], PAIR: item[1]}
        else:
            tokens = ", a list of tokens" if word_level else ""
            raise DataError(f"expected a text, a (text, text_pair) tuple{tokens} or a mapping of columns; got "
                            f"{_short(item)}", SOURCE, n)
        self.check_texts(row, n)
        return {**row, LINE: n}

    def mapping_row(self, item: Mapping[str, Any], n: int, labelled: bool) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for key, column in zip((TEXT, PAIR), self.text):
            value = _value(item, column, key)
            if value is None:
                raise DataError(f"missing text column {column!r}; the input has: {', '.join(map(repr, item))}",
                                SOURCE, n)
            row[key] = value
        if self.pairs is None and _value(item, PAIR, PAIR) is not None:  # the model's columns are not known
            row[PAIR] = _value(item, PAIR, PAIR)
        if labelled:
            values = [_value(item, column, LABEL) for column in self.label or [LABEL]]
            if any(v is None for v in values):
                column = (self.label or [LABEL])[values.index(None)]
                raise DataError(f"missing label in column {column!r}", SOURCE, n)
            values = [v.strip() if isinstance(v, str) else v for v in values]
            row[LABEL] = values if self.label_is_list else values[0]
        return row

    def check_texts(self, row: dict[str, Any], n: int) -> None:
        """No empty text, and a pair exactly where the model reads pairs."""
        for key in (TEXT, PAIR):
            value = row.get(key)
            if key in row and (not value or (isinstance(value, str) and not value.strip())):
                raise DataError("empty text" if key == TEXT else "empty second text of the pair", SOURCE, n)
        if self.pairs is None or (PAIR in row) == self.pairs:
            return
        if self.pairs:
            raise DataError(f"this model reads pairs of texts (trained on the columns {self.text[0]!r} and "
                            f"{self.text[1]!r}): give (text, text_pair) tuples, or mappings with both columns",
                            SOURCE, n)
        raise DataError("this model reads one text at a time, not pairs: give texts (several of them as a list of "
                        "strings)", SOURCE, n)


def _value(item: Mapping[str, Any], column: str, standard: str) -> Any:
    """The item's value in ``column`` (else under the standard name) as a plain Python value; None when missing
    (a DataFrame's NaN included)."""
    value = item.get(column, item.get(standard))
    if hasattr(value, "tolist"):  # numpy scalars and arrays (a DataFrame's cells)
        value = value.tolist()
    if (isinstance(value, float) and math.isnan(value)) or type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _pandas(value: Any) -> str | None:
    """``"DataFrame"`` or ``"Series"`` for pandas' (told without importing pandas), else None."""
    kind = type(value).__name__
    return kind if kind in ("DataFrame", "Series") and type(value).__module__.startswith("pandas") else None


def _short(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
