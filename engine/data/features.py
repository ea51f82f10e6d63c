"""Rows to features: the task's ``encode_batch`` run over a split with ``Dataset.map``, in several processes for
large splits, and cached (see ``engine.data.cache``), so a node tokenizes a split once and a second run not at all.

Features are Arrow rows too: the training loader and evaluation read the ones a batch needs, as dicts, and hand
them to the task's ``collate``. Every feature has ``row`` (the index of its row in the split) and ``length``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from engine import console
from engine.data import cache
from engine.data.augmentation import AugmentationSummary, as_tokens, run_chain
from engine.data.split import LINE, Split, decode_batch, rows_of, rows_to_dataset, stream_rows
from engine.deprecation import warn_deprecated
from engine.errors import DataError, EngineError
from engine.registry import Augmentation

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BATCH = 1000  # rows per encode_batch call
TYPE_SAMPLE = 64  # rows encoded first to learn the features' types
PARALLEL_FROM = 50_000  # rows: smaller splits tokenize in this process (starting workers costs more than it saves)


def encodes_in_batches(task: Any) -> bool:
    """Whether a task implements the batched contract (rather than only the ``encode`` of engine 0.1)."""
    from engine.task import Task

    method = getattr(type(task), "encode_batch", None)
    return method is not None and method is not Task.encode_batch


def feature_key(task_config: Any, plugin_version: str | None) -> list[Any]:
    """What identifies a task's features beyond its class and ``state_dict()``: the task file's section (its
    options) and the version of the plugin that declared it. One shape for training and for predict/evaluate, so
    each finds the features the other cached."""
    return [task_config, plugin_version]


def augmentation_keys(augment: Sequence[Any], infos: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What identifies each augmentation's output in the augmented split's key (``augment``'s ``configs``): the
    resolved choice's options as filled in (``{}`` and the defaults written out are one), and the name and version
    of the plugin that declared it (an upgraded plugin augments again). ``infos``: the plugin manager's, by name."""
    return [{"augmentation": a.filled, "plugin": a.component.plugin,
             "version": getattr(infos.get(a.component.plugin), "version", None)} for a in augment]


_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what the tokenizer does (its vocabulary, rules and inputs), wherever it was loaded from; computed
    once per tokenizer object (serialising a large vocabulary takes a second)."""
    if tokenizer in _fingerprints:
        return _fingerprints[tokenizer]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Without the truncation and padding settings, which the last call left there.
        text = json.dumps({k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")},
                          sort_keys=True)
    else:
        from datasets.fingerprint import Hasher

        text = Hasher.hash(tokenizer)
    text += json.dumps([type(tokenizer).__name__, list(tokenizer.model_input_names)])
    _fingerprints[tokenizer] = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    return _fingerprints[tokenizer]


def encode_rows(batch: dict[str, list[Any]], indices: list[int], *, task: Any, tokenizer: Any, max_length: int,
                labelled: bool, source: str) -> dict[str, Any]:
    """The task's features of a batch of rows (``{column: values}``, as ``Dataset.map`` or a server hands them):
    its columns, with ``row`` made absolute (``indices[i]`` is the split's row of the batch's row i) and ``length``
    filled in. The task always gets a ``_line`` column (None where the source has no lines)."""
    rows = decode_batch(batch)
    rows.setdefault(LINE, [None] * len(indices))
    try:
        out = dict(task.encode_batch(rows, tokenizer, max_length, labelled))
    except DataError as exc:
        if exc.file is None:
            raise DataError(exc.message, source, exc.line) from None
        raise
    count = len(out["input_ids"])
    relative = out.pop("row", None)
    if relative is None:
        if count != len(indices):
            raise EngineError(f"{type(task).__name__}.encode_batch returned {count} features for {len(indices)} rows "
                              "and no 'row' column saying which row each came from")
        relative = range(count)
    out["row"] = [indices[r] for r in relative]
    out.setdefault("length", [len(ids) for ids in out["input_ids"]])
    return out


def feature_types(encode: Callable[..., dict[str, Any]], split: Split) -> Any:
    """The Arrow types of the features, from the first rows encoded once more: as inferred, but 32-bit token ids
    (half the disk and page cache of 64-bit ones)."""
    import datasets

    first = split.data.select(range(min(TYPE_SAMPLE, len(split))))
    sample = encode(first[:], list(range(first.num_rows)))
    types = datasets.Dataset.from_dict(sample).features
    for key in MODEL_INPUTS:
        if key in types:
            types[key] = _int32(types[key])
    return types


def _int32(feature: Any) -> Any:
    """``feature`` with its integers 32-bit, at any depth (a multiple-choice row's ids are a list per choice)."""
    import datasets

    if isinstance(feature, datasets.List):
        return datasets.List(_int32(feature.feature))
    if isinstance(feature, datasets.Value) and feature.dtype == "int64":
        return datasets.Value("int32")
    return feature


def encode_split(task: Any, split: Split, tokenizer: Any, max_length: int, *, labelled: bool = True,
                 num_proc: int | None = None, key: Any = None) -> Any:
    """The features of every row of ``split``: a ``datasets.Dataset`` (an ``IterableDataset``, encoded as it is
    read, for a streamed split). Cached when the split has a fingerprint; ``key`` adds what else identifies the
    task (``feature_key``)."""
    if not encodes_in_batches(task):
        return _encode_legacy(task, split, tokenizer, max_length, labelled)
    encode = partial(encode_rows, task=task, tokenizer=tokenizer, max_length=max_length, labelled=labelled,
                     source=split.source)
    columns = split.data.column_names
    if split.streaming:
        return split.data.map(encode, batched=True, batch_size=BATCH, with_indices=True, remove_columns=columns)
    rows = len(split)
    procs = num_proc or (min(os.cpu_count() or 1, 8) if rows >= PARALLEL_FROM else 1)
    procs = max(1, min(procs, rows // BATCH or 1))
    key_hash = None if split.fingerprint is None else cache.fingerprint(
        "features", split.fingerprint, type(task).__module__, type(task).__qualname__, task.state_dict(),
        tokenizer_fingerprint(tokenizer), max_length, labelled, key)

    def run_map(folder: Path | None) -> Any:
        import datasets

        started = time.perf_counter()
        if console.console.is_terminal and not console.console.quiet:  # a bar redrawn in a log file is noise
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()
        try:
            features = split.data.map(
                encode, batched=True, batch_size=BATCH, with_indices=True, remove_columns=columns,
                num_proc=procs if procs > 1 else None,  # datasets 4 starts a worker pool even for num_proc=1
                desc=f"tokenize {split.name}", new_fingerprint=key_hash or uuid.uuid4().hex,
                features=feature_types(encode, split),
                cache_file_name=str(folder / "features.arrow") if folder is not None else None,
            )
        finally:
            datasets.disable_progress_bars()
        console.info(f"{split.name}: {rows:,} rows tokenized in {time.perf_counter() - started:.1f} s"
                     + (f" ({procs} processes)" if procs > 1 else ""))
        return features

    if key_hash is None:
        features = run_map(None)
    else:
        entry = cache.lookup("features", key_hash)
        if entry is None:
            entry = cache.build("features", key_hash, lambda folder: {
                "source": split.source, "split": split.name, "rows": rows, "features": run_map(folder).num_rows})
        else:
            console.info(f"{split.name}: features read from the cache ({entry})")
        features = cache.load(entry, "features")
    report(split, features, max_length)
    return features


def _encode_legacy(task: Any, split: Split, tokenizer: Any, max_length: int, labelled: bool) -> Any:
    """A task written for engine 0.1 encodes a whole split into a list: still works, in memory and uncached."""
    import datasets

    warn_deprecated("encode", f"{type(task).__module__}.{type(task).__qualname__}")
    features = task.encode(split, tokenizer, max_length, labelled=labelled)
    return datasets.Dataset.from_list(features) if features else datasets.Dataset.from_dict({"row": [], "length": []})


def report(split: Split, features: Any, max_length: int) -> None:
    """Say how many rows were truncated, and how many were read as several features (windows)."""
    import numpy as np

    if not features.num_rows:
        return
    row = features.data.column("row").to_numpy()
    length = features.data.column("length").to_numpy()
    per_row = np.bincount(row, minlength=len(split))
    truncated = int(((length >= max_length) & (per_row[row] == 1)).sum())
    windowed = int((per_row > 1).sum())
    if truncated:
        console.warn(f"{split.name}: {truncated} of {len(split)} rows reached model.max_length={max_length} tokens "
                     "and were truncated")
    if windowed:
        console.info(f"{split.name}: {windowed} row(s) are read as several features ({int(per_row[per_row > 1].sum())} "
                     f"in all), as the task does with inputs longer than model.max_length={max_length} tokens")


def lengths(features: Any) -> list[int]:
    return features.data.column("length").to_pylist()


def row_starts(features: Any) -> Any:
    """A boolean array: whether each feature is the first of its row. Rows count once however many features they
    give (tagging windows, a multiple-choice row's sequences), so progress and samples/s count rows: a row counts
    where its first feature is. Features of one row are consecutive, as the encoding writes them."""
    import numpy as np

    rows = features.data.column("row").to_numpy() if features.num_rows else np.zeros(0, dtype=np.int64)
    return starts_of(rows)


def starts_of(rows: Any, previous: int | None = None) -> Any:
    """``row_starts`` of a sequence of row numbers; ``previous`` is the row of the feature before the first."""
    import numpy as np

    rows = np.asarray(rows)
    before = np.concatenate([[-1 if previous is None else previous], rows[:-1]]) if len(rows) else rows
    return rows != before


def take(features: Any, indices: list[int]) -> list[dict[str, Any]]:
    """The features at ``indices``, as dicts (what ``collate`` gets)."""
    return rows_of(features[indices])


AUGMENT_CHUNK = 1000  # rows an augmentation sees at once, each chunk with its own seeded generator
AUGMENTATION_FILE = "augmentation.json"  # in the augmented split's cache entry: what each augmentation did


def augment(train: Split, augmentations: Sequence[Augmentation], configs: Sequence[Any], seed: int, *,
            names: Sequence[str] | None = None, tokens: bool = False) -> Split:
    """The training split through the augmentations, chunk by chunk: each chunk of ``AUGMENT_CHUNK`` rows gets a
    generator seeded by ``seed`` and its position, so a run reproduces whatever reads it (a stream, several
    processes). Cached with the split's rows, keyed by the augmentations' ``configs`` (what identifies each: its
    options, its plugin's version) and ``fingerprint``s, together with what each augmentation did: the split
    returned carries it (``Split.augmentation``), from the cache too. ``names`` name the augmentations (default:
    each config's ``name``). ``tokens``: the task's rows are words with one tag each (the ``tokens`` shape), given
    to the augmentations as the contract says, ``text`` and ``label`` lists, whether the file wrote them as lists or
    as whitespace-separated strings (``as_tokens``)."""
    steps = list(zip(augmentation_names(augmentations, configs, names), augmentations))
    summaries = [AugmentationSummary(name) for name, _ in steps]

    def rows(count: bool) -> Iterator[dict[str, Any]]:
        for index, batch in enumerate(train.batches(size=AUGMENT_CHUNK)):
            chunk = [as_tokens(row) for row in rows_of(batch)] if tokens else rows_of(batch)
            yield from run_chain(chunk, random.Random(f"{seed}:{index}"), steps, summaries if count else None)

    if train.streaming:
        passes = itertools.count()  # the first pass (the stream's first rows, read now for its types) is counted
        augmented = train.with_rows(stream_rows(train.source, lambda: rows(next(passes) == 0)))
        augmented.augmentation = [dataclasses.replace(s, examples=list(s.examples), streamed=True) for s in summaries]
        return augmented
    if train.fingerprint is None:
        augmented = train.with_rows(rows_to_dataset(rows(True), train.source))
        augmented.augmentation = summaries
        return augmented
    fingerprints = [getattr(apply, "fingerprint", None) for apply in augmentations]
    key = cache.fingerprint("augmented", train.fingerprint, list(configs), seed, fingerprints,
                            *(["tokens"] if tokens else []))
    data, augmented_by = cached_augmentation(key, train.source, lambda: rows(True), summaries)
    augmented = train.with_rows(data, fingerprint=key)
    augmented.augmentation = augmented_by
    return augmented


def augmentation_names(augmentations: Sequence[Any], configs: Sequence[Any], names: Sequence[str] | None) -> list[str]:
    """What marks and counts each augmentation: ``names``, else its config's ``name``, else its function's name."""
    if names is not None:
        return list(names)
    found = []
    for i, apply in enumerate(augmentations):
        config = configs[i] if i < len(configs) else None
        name = config.get("name") if isinstance(config, dict) else config if isinstance(config, str) else None
        found.append(str(name or getattr(apply, "__name__", f"augmentation {i + 1}")))
    return found


def cached_augmentation(key: str, source: str, rows: Callable[[], Iterable[dict[str, Any]]],
                        summaries: list[AugmentationSummary]) -> tuple[Any, list[AugmentationSummary]]:
    """The augmented rows, written once to the data cache with what each augmentation did (``summaries``, filled
    as ``rows()`` is read) beside them in the same entry, so the cache's checksums guard both and a second run
    knows the counts without augmenting again. Returns the rows memory-mapped and the summaries read back."""

    def write(folder: Path) -> dict[str, Any]:
        count = rows_to_dataset(rows(), source, folder / "rows.arrow").num_rows
        text = json.dumps([s.to_dict() for s in summaries], ensure_ascii=False, default=str)
        (folder / AUGMENTATION_FILE).write_text(text, encoding="utf-8")
        return {"source": source, "rows": count}

    entry = cache.lookup("rows", key) or cache.build("rows", key, write)
    return cache.load(entry, "rows"), read_summaries(entry / AUGMENTATION_FILE)


def read_summaries(path: Path) -> list[AugmentationSummary]:
    """What an augmented split's cache entry says each augmentation did ([] for an entry without it)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        return [AugmentationSummary.from_dict(r) for r in records]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        console.warn(f"{path} cannot be read ({exc}): the counts of the augmentations are unknown")
        return []


class FeatureRows(Sequence[dict[str, Any]]):
    """Features as a task's ``predictions`` sees them: dicts read from Arrow a batch at a time when iterated (row by
    row, a 100,000-feature split takes seconds), and whole columns by name (``features["row"]``) as lists."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return int(self.data.num_rows)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.data.data.column(key).to_pylist()
        if isinstance(key, slice):
            return rows_of(self.data[key])
        return rows_of(self.data[key : key + 1 or None])[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.data.iter(batch_size=BATCH * 10):
            yield from rows_of(batch)


class FeatureList(Sequence[dict[str, Any]]):
    """Features held in memory as dicts (a server's, from ``encode_rows``), read as ``FeatureRows`` reads Arrow:
    iterated, indexed, or a whole column by name (``features["row"]``)."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return [feature[key] for feature in self.features]
        return self.features[key]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.features)


def predictions_of(task: Any, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
    """The task's predictions for every row of ``split`` from its features' outputs (``features``: a
    ``datasets.Dataset``, or a ``FeatureList``)."""
    rows = features if isinstance(features, FeatureList) else FeatureRows(features)
    return task.predictions(split, rows, outputs)
