"""Training batches: length-grouped, shuffled, seeded, and sharded between processes so that N processes at batch
B train on the very batches one process at N x B does; from a whole split or from a stream."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Sampler

from engine.data.features import starts_of, take
from engine.errors import EngineError
from engine.training.sampler import TaskSampler

BUFFER_BATCHES = 50  # global batches in a streaming shuffle buffer (as in one sorted chunk of LengthGroupedBatches)


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar-length features: far less padding than random batches, still random order.

    Features are shuffled, cut into chunks of 50 batches, each chunk sorted by length and split into batches, and
    the batches shuffled. Seeded by ``seed`` and the epoch, so runs reproduce.

    With several processes the batches are global: ``batch_size`` features for each of ``num_processes``, and this
    process (``rank``) takes every ``num_processes``-th feature of each (similar lengths, so no process waits on a
    longer share). N processes with batch B therefore see the batches one process with batch N*B sees, in the same
    order. ``start_epoch(epoch, skip)`` starts an epoch ``skip`` batches in, for an exact resume.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: bool = True, *,
                 num_processes: int = 1, rank: int = 0, starts: Any = None) -> None:
        self.lengths, self.seed, self.group = lengths, seed, group
        self.batch_size, self.num_processes, self.rank = batch_size, num_processes, rank
        self.epoch, self.skip = 0, 0
        #: ``row_starts`` of the features (None: every feature is a row of its own).
        self.starts = starts
        #: Rows in each global batch of the epoch being iterated (``rows_in``), all processes' shares together.
        self.batch_rows: list[int] = []

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        # Not `set_epoch`: Accelerate calls that on samplers with its own count of iterations, wrong after a resume.
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / (self.batch_size * self.num_processes))

    def global_batches(self) -> list[list[int]]:
        size = self.batch_size * self.num_processes
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.group:
            return [order[i : i + size] for i in range(0, len(order), size)]
        chunk = size * 50
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i], reverse=True)
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        full = [b for b in batches if len(b) == size]
        rng.shuffle(full)
        return full + [b for b in batches if len(b) != size]  # the one short batch, if any, goes last

    def rows_in(self, batch: int) -> int:
        """The rows the epoch's ``batch``-th global batch trains on (a row counts in the batch of its first
        feature): every process knows the whole batch's count, with no communication."""
        return self.batch_rows[batch]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        starts = self.starts
        self.batch_rows = [len(b) for b in batches] if starts is None else [int(starts[b].sum()) for b in batches]
        for batch in batches[self.skip :]:
            if len(batch) < self.num_processes:  # every process needs a share: top up from the first batch
                batch = batch + batches[0][: self.num_processes - len(batch)]
            yield batch[self.rank :: self.num_processes]


class StreamBatches(torch.utils.data.IterableDataset):
    """Length-grouped batches from a stream of features (``data.streaming``), in flat memory.

    The stream is read in buffers of ``BUFFER_BATCHES`` global batches; each buffer is shuffled, grouped by length
    and cut into batches as ``LengthGroupedBatches`` does with a whole split, and this process takes its share. The
    stream is read again for every epoch (a new shuffle within each buffer), and ``start_epoch(epoch, skip)`` skips
    ``skip`` batches by reading past them: a resume is exact, at the cost of reading the skipped part again.
    """

    def __init__(self, features: Any, batch_size: int, seed: int, group: bool = True, *,
                 num_processes: int = 1, rank: int = 0) -> None:
        self.features, self.batch_size, self.seed, self.group = features, batch_size, seed, group
        self.num_processes, self.rank = num_processes, rank
        self.epoch, self.skip = 0, 0
        self.batch_rows: dict[int, int] = {}  # rows of the global batches read but not yet trained on

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def rows_in(self, batch: int) -> int:
        """As ``LengthGroupedBatches.rows_in``, for a batch already read (asked for once, in order)."""
        return self.batch_rows.pop(batch)

    def count(self) -> tuple[int, int]:
        """The global batches of one pass over the stream and the rows in it, by reading it once (its features'
        rows and lengths only): each full buffer makes ``BUFFER_BATCHES`` batches, the last one what it holds."""
        features = rows = 0
        previous = None
        for feature in self.features:
            features += 1
            rows += feature["row"] != previous
            previous = feature["row"]
        per_batch = self.batch_size * self.num_processes
        full, rest = divmod(features, per_batch * BUFFER_BATCHES)
        return full * BUFFER_BATCHES + math.ceil(rest / per_batch), rows

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        size = self.batch_size * self.num_processes * BUFFER_BATCHES
        done, last_row = 0, None
        buffer: list[dict[str, Any]] = []
        self.batch_rows = {}
        for part, feature in enumerate(self.features):
            buffer.append(feature)
            if len(buffer) == size:
                yield from self._batches(buffer, part, done, last_row)
                done += math.ceil(len(buffer) / (self.batch_size * self.num_processes))
                buffer, last_row = [], buffer[-1]["row"]
        if buffer:
            yield from self._batches(buffer, -1, done, last_row)

    def _batches(self, buffer: list[dict[str, Any]], part: int, done: int,
                 last_row: int | None) -> Iterator[list[dict[str, Any]]]:
        sampler = LengthGroupedBatches([f["length"] for f in buffer], self.batch_size, self.seed * 7919 + part,
                                       self.group, num_processes=self.num_processes, rank=self.rank,
                                       starts=starts_of([f["row"] for f in buffer], last_row))
        skip = max(0, self.skip - done)
        sampler.start_epoch(self.epoch, skip=skip)
        for number, indices in enumerate(sampler, start=done + skip):
            self.batch_rows[number] = sampler.rows_in(number - done)
            yield [buffer[i] for i in indices]


#: A task's passes within one epoch of a multi-task run are told apart in its batches' seed (epoch * this + pass).
PASSES = 1009


@dataclass
class _Reading:
    """Where a streamed task's reader is: which pass (its seed), the next batch in it, the batches to come."""

    key: int
    next: int
    batches: Iterator[list[dict[str, Any]]]


class TaskBatches:
    """The batches of a multi-task run: each global batch from one task, the task drawn by a ``TaskSampler`` from
    the batch's number in the run (``epoch * len(self) + batch``); within a task, its own ``LengthGroupedBatches``
    in order. An epoch is as many batches as all the tasks have together (docs/multitask.md); a task drawn more
    often than it has batches starts another pass over its data, shuffled anew. ``start_epoch(epoch, skip)``
    starts ``skip`` batches in: the draws before it are made again to know where each task is, so a resume is exact.

    A streamed task (``StreamBatches``) is read once first to count its batches; its batches are then read in
    order as they are drawn, each pass of it a new read (a resume reads past the batches done, as a one-task
    stream does). It yields this process's features, where a split's task yields their indices.
    """

    def __init__(self, samplers: dict[str, LengthGroupedBatches | StreamBatches], sampler: Any, seed: int) -> None:
        self.samplers = samplers
        self.streams: dict[str, StreamBatches] = {n: s for n, s in samplers.items() if isinstance(s, StreamBatches)}
        counted = {name: stream.count() for name, stream in self.streams.items()}
        self.stream_rows = {name: rows for name, (_, rows) in counted.items()}
        self.sizes = {name: counted[name][0] if isinstance(s, StreamBatches) else len(s)
                      for name, s in samplers.items()}
        empty = [name for name, size in self.sizes.items() if not size]
        if empty:
            raise EngineError(f"task {empty[0]!r}: its training stream has no rows")
        self.reading: dict[str, _Reading] = {}
        self.tasks = TaskSampler(self.sizes, sampler, seed)
        self.epoch, self.skip = 0, 0
        self.num_processes = next(iter(samplers.values())).num_processes
        self.batch_size = next(iter(samplers.values())).batch_size
        self.batch_rows: dict[int, int] = {}
        self.cache: dict[tuple[str, int], tuple[list[list[int]], list[int]]] = {}

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return sum(self.sizes.values())

    def schedule(self) -> list[tuple[str, int]]:
        """This epoch's batches: (task, the number of that task's batch in the epoch), in order."""
        seen = dict.fromkeys(self.samplers, 0)
        order = []
        for batch in range(len(self)):
            name = self.tasks.task_at(self.epoch * len(self) + batch)
            order.append((name, seen[name]))
            seen[name] += 1
        return order

    def streamed_batch(self, name: str, number: int) -> tuple[list[dict[str, Any]], int]:
        """Streamed task ``name``'s ``number``-th batch of this epoch (this process's features) and its rows: the
        next one its reader gives, or a new read of that pass, started at that batch."""
        stream, size = self.streams[name], self.sizes[name]
        key, within = self.epoch * PASSES + number // size, number % size
        reading = self.reading.get(name)
        if reading is None or reading.key != key or reading.next != within:
            stream.start_epoch(key, skip=within)
            reading = self.reading[name] = _Reading(key, within, iter(stream))
        batch = next(reading.batches, None)
        if batch is None:
            raise EngineError(f"task {name!r}: its training stream gave {within} batches in this pass, {size} when "
                              "it was counted at the start: did its files change during the run?")
        reading.next += 1
        return batch, stream.rows_in(within)

    def global_batch(self, name: str, number: int) -> tuple[list[int], int]:
        """Task ``name``'s ``number``-th batch of this epoch (all processes' features) and its rows."""
        sampler, size = self.samplers[name], self.sizes[name]
        assert isinstance(sampler, LengthGroupedBatches)
        key = (name, self.epoch * PASSES + number // size)
        if key not in self.cache:
            self.cache = {k: v for k, v in self.cache.items() if k[0] != name}  # one pass of each task kept
            sampler.start_epoch(key[1])
            batches = sampler.global_batches()
            starts = sampler.starts
            self.cache[key] = (batches, [len(b) if starts is None else int(starts[b].sum()) for b in batches])
        batches, rows = self.cache[key]
        batch = batches[number % size]
        if len(batch) < self.num_processes:  # every process needs a share, as LengthGroupedBatches tops up
            batch = batch + batches[0][: self.num_processes - len(batch)]
        return batch, rows[number % size]

    def rows_in(self, batch: int) -> int:
        """As ``LengthGroupedBatches.rows_in``, for a batch already yielded (asked for once, in order)."""
        return self.batch_rows.pop(batch)

    def __iter__(self) -> Iterator[tuple[str, list[int] | list[dict[str, Any]]]]:
        rank = self.samplers[next(iter(self.samplers))].rank
        for number, (name, within) in enumerate(self.schedule()):
            if number < self.skip:
                continue
            if name in self.streams:
                features, self.batch_rows[number] = self.streamed_batch(name, within)
                yield name, features
                continue
            batch, self.batch_rows[number] = self.global_batch(name, within)
            yield name, batch[rank :: self.num_processes]


class TaskLoader:
    """Iterates a ``TaskBatches``: each batch read from its task's features, collated by its task, placed on the
    device and marked with ``task`` (the name the multi-task model routes it by). Tells Accelerate where the epoch
    ends, as its own loaders do, so that an epoch's last accumulated batches make a step."""

    def __init__(self, order: TaskBatches, features: dict[str, Any], tasks: dict[str, Any], tokenizer: Any,
                 device: Any) -> None:
        self.order, self.features, self.tasks, self.tokenizer, self.device = order, features, tasks, tokenizer, device
        self.end_of_dataloader, self.remainder = False, -1  # what Accelerate's GradientState reads

    def batch(self, name: str, part: list[int] | list[dict[str, Any]]) -> dict[str, Any]:
        """``part``: this process's share of the batch, features' indices (or, for a streamed task, features)."""
        features = part if name in self.order.streams else take(self.features[name], part)  # type: ignore[arg-type]
        batch: dict[str, Any] = {k: v.to(self.device) for k, v in
                                 self.tasks[name].collate(features, self.tokenizer).items()}
        batch["task"] = name
        return batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from accelerate.state import GradientState

        state = GradientState()
        self.end_of_dataloader = False
        state._add_dataloader(self)
        try:
            items = iter(self.order)
            current = next(items, None)
            while current is not None:
                following = next(items, None)
                self.end_of_dataloader = following is None
                yield self.batch(*current)
                current = following
        finally:
            state._remove_dataloader(self)


@dataclass
class Batches:
    """A run's training batches: the sampler that orders and shards them, the loader that collates and places them."""

    sampler: LengthGroupedBatches | StreamBatches | TaskBatches
    loader: Any
    #: Batches in an epoch (None: a stream's length is unknown).
    epoch_size: int | None

    @property
    def streaming(self) -> bool:
        return self.epoch_size is None

    def rows(self, batches: int) -> int:
        """The rows this many batches train on, over all processes: exact for whole epochs of a split, else an
        estimate (a stream's rows are unknown: one a feature)."""
        sampler = self.sampler
        if isinstance(sampler, StreamBatches):
            return batches * sampler.batch_size * sampler.num_processes
        assert self.epoch_size
        if isinstance(sampler, TaskBatches):
            rows = sum(sampler.stream_rows[name] if isinstance(s, StreamBatches) else int(s.starts.sum())
                       for name, s in sampler.samplers.items())
            return round(rows * batches / self.epoch_size)
        return round(int(sampler.starts.sum()) * batches / self.epoch_size)


def collate(task: Any, tokenizer: Any, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The training loader's collate_fn: the task pads its features (arguments as the Task protocol has them)."""
    return task.collate(features, tokenizer)
