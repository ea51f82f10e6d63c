"""Dynamic batching: the inputs of every request wait in one queue, and the model's streams (threads: one by
default on a GPU, two on a CPU, as Triton's model instances and OpenVINO's streams) take batches from it by length
under a token budget, run the model on each, and hand finished requests back.

A batch is formed when the model is free (``max_wait_ms``: or once its first input has waited that long, or the
budget is full), as Triton and text-embeddings-inference do: under light load a request runs alone at once, under
heavy load batches grow by themselves. It holds the oldest waiting input, so none starves, and the inputs closest
to it in length that fit the budget (the batch's longest input times its inputs, padding included) and are no more
than 1.5 times as long as its shortest, so padding stays low. A batch that fails is run again request by request, so
one bad request fails alone. The streams share one model; the first takes its next batch whenever it is free, the
others only while it computes (under light load one stream does all the work, with every thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.serve.metrics import Metrics

#: The weight of the last batch in the measured speed (tokens/s) that estimates how long the queue takes.
RATE_SMOOTHING = 0.2
# Inputs share a batch when the longest is at most SPREAD times the shortest, or SLACK_TOKENS longer. On a CPU a
# batch of all-MiniLM-L6-v2 costs about 8 ms plus 0.11 ms a padded token (2 cores, both threads): padding 70 tokens
# costs what a batch more does. Against twice and 16 tokens, these gave 1.1x to 1.25x the requests/s at 32 clients
# (bench/serve.py); batches of every length, half. In a simulation of bench/serve.py's 32 clients with those costs,
# the partition of the queue that minimises its cost (dynamic programming) did 1.4% better: not worth a rule less
# plain.
SPREAD = 1.5
SLACK_TOKENS = 8


@dataclass(eq=False)
class Job:
    """One request's inputs on their way through the model: its features (one or more per input), the outputs
    computed so far, and what happened to it."""

    features: list[dict[str, Any]]
    context: Any = None  # what the caller needs to finish the job (its inputs, its future)
    outputs: list[Any] = field(default_factory=list)
    raw: list[Any] = field(default_factory=list)
    remaining: int = 0
    enqueued: float = 0.0
    started: float | None = None
    cancelled: bool = False  # its client went away: what is not computed yet is dropped
    error: BaseException | None = None
    reported: bool = False  # handed on as finished (by the stream that computed its last input)

    def __post_init__(self) -> None:
        self.outputs = [None] * len(self.features)
        self.raw = [None] * len(self.features)
        self.remaining = len(self.features)

    @property
    def lengths(self) -> list[int]:
        return [int(feature["length"]) for feature in self.features]


@dataclass(eq=False)
class Item:
    """One feature of a job, waiting in the queue."""

    job: Job
    index: int
    length: int


def form_batch(pending: list[Item], max_tokens: int, max_requests: int | None) -> list[Item]:
    """The next batch from ``pending`` (oldest first): the oldest item, then the others in order of how close
    their length is to its own (the older first among equals), each while the batch's padded size (its longest
    item times its items) stays within ``max_tokens``, its jobs within ``max_requests``, and its lengths within
    ``similar`` of each other. The oldest item goes even when it alone is over the budget."""
    anchor = pending[0]
    batch, shortest, longest, jobs = [anchor], anchor.length, anchor.length, {id(anchor.job)}
    order = sorted(range(1, len(pending)), key=lambda i: (abs(pending[i].length - anchor.length), i))
    for i in order:
        if longest * (len(batch) + 1) > max_tokens:
            break  # not even an item no longer than the longest fits
        item = pending[i]
        low, high = min(shortest, item.length), max(longest, item.length)
        if high * (len(batch) + 1) > max_tokens or not similar(low, high):
            continue
        if id(item.job) not in jobs and max_requests is not None and len(jobs) >= max_requests:
            continue
        batch.append(item)
        shortest, longest = low, high
        jobs.add(id(item.job))
    return batch


def similar(shortest: int, longest: int) -> bool:
    """Whether inputs of these lengths share a batch: at most a third of an input's row is padding, or a few
    tokens (below that, a second batch costs more than the padding saves)."""
    return longest <= max(SPREAD * shortest, shortest + SLACK_TOKENS)


Forward = Callable[[list[dict[str, Any]]], tuple[list[Any], list[Any]]]


class Batcher:
    """The queue and the model's ``streams`` threads. ``forward(features)`` runs the model on a batch and gives each
    feature's output and raw output (from any stream: ``busy`` says how many compute at the time);
    ``finished(jobs)`` takes the jobs a batch completed or failed (from a stream: it should hand them on quickly);
    ``after_batch()``, when given, is called from the stream after each batch (the server's memory trim, which keeps
    its own pace)."""

    def __init__(self, forward: Forward, finished: Callable[[list[Job]], None], metrics: Metrics, *,
                 max_batch_tokens: int, max_batch_requests: int | None, max_wait_ms: float,
                 streams: int = 1, after_batch: Callable[[], None] | None = None) -> None:
        self.forward, self.finished, self.metrics, self.after_batch = forward, finished, metrics, after_batch
        self.max_tokens, self.max_requests, self.max_wait = max_batch_tokens, max_batch_requests, max_wait_ms / 1000
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)  # the lock over the queue and the counts
        # Each stream sleeps on a condition of its own. The first stream takes work whenever it is free; the others
        # only while it computes, so that under light load it does all the work, as one stream would alone (the
        # server gives it every thread then; a request that went to another stream ran on one thread, slower).
        self.wakers = [threading.Condition(self.lock) for _ in range(streams)]
        self.idle: list[threading.Condition] = []
        self.lead_computing = False
        self.pending: list[Item] = []
        self.queued_tokens = 0  # real tokens waiting
        self.running_tokens = 0  # real tokens of the batches being computed
        self.busy = 0  # streams computing a batch
        self.rate: float | None = None  # real tokens computed per second, all streams together, smoothed
        self.stopping = False
        self.threads = [threading.Thread(target=self.work, args=(waker,), name=f"engine-serve-model-{n}", daemon=True)
                        for n, waker in enumerate(self.wakers)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """Finish the batches in progress, fail what still waits, and end the streams."""
        with self.condition:
            self.stopping = True
            for waker in self.wakers:
                waker.notify()
        for thread in self.threads:
            if thread.is_alive():
                thread.join()

    def submit(self, job: Job) -> None:
        job.enqueued = time.perf_counter()
        with self.condition:
            if self.stopping:
                raise RuntimeError("the server is shutting down")
            for index, length in enumerate(job.lengths):
                self.pending.append(Item(job, index, length))
                self.queued_tokens += length
            self.wake()

    @property
    def depth(self) -> int:
        """Inputs waiting."""
        return len(self.pending)

    def wait_seconds(self, extra_tokens: float = 0.0) -> float:
        """About how long the queued work (and ``extra_tokens`` more) takes to compute, at the measured speed."""
        if not self.rate:
            return 0.0
        return (self.queued_tokens + self.running_tokens + extra_tokens) / self.rate

    # --- a stream ----------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Under the lock: wake the first stream if it is idle, else the one that went idle last (which takes work
        only while the first computes)."""
        if self.idle:
            (self.wakers[0] if self.wakers[0] in self.idle else self.idle[-1]).notify()

    def sleep(self, waker: threading.Condition, timeout: float | None = None) -> None:
        """Under the lock: this stream waits, idle, until woken (or ``timeout`` seconds)."""
        self.idle.append(waker)
        try:
            waker.wait(timeout)
        finally:
            self.idle.remove(waker)

    def work(self, waker: threading.Condition) -> None:
        while True:
            with self.condition:
                batch = self.next_batch(waker)
                if batch is None:
                    return
                self.busy += 1
                sharing = self.busy
            self.run(batch, sharing, lead=waker is self.wakers[0])
            if self.after_batch is not None:
                self.after_batch()

    def next_batch(self, waker: threading.Condition) -> list[Item] | None:
        """Under the lock: wait for work, then take a batch off the queue; None once stopping."""
        while True:
            self.drop_abandoned()
            if self.stopping:
                self.fail_pending(RuntimeError("the server shut down before computing this request"))
                return None
            lead = waker is self.wakers[0]
            if not self.pending or not (lead or self.lead_computing):
                self.sleep(waker)
                continue
            if self.max_wait > 0 and not self.full():
                left = self.pending[0].job.enqueued + self.max_wait - time.perf_counter()
                if left > 0:
                    self.sleep(waker, left)
                    continue
            batch = form_batch(self.pending, self.max_tokens, self.max_requests)
            now = time.perf_counter()
            for job in {id(item.job): item.job for item in batch}.values():
                if job.started is None:
                    job.started = now
                    self.metrics.observe(self.metrics.queue_time, now - job.enqueued)
            taken = {id(item) for item in batch}
            self.pending = [item for item in self.pending if id(item) not in taken]
            tokens = sum(item.length for item in batch)
            self.queued_tokens -= tokens
            self.running_tokens += tokens
            if lead:
                self.lead_computing = True
            if self.pending:
                self.wake()  # another stream, if one is free, takes the next batch
            return batch

    def full(self) -> bool:
        """Whether the waiting inputs fill a batch already (so waiting longer gains nothing)."""
        if self.max_requests is not None and len({id(item.job) for item in self.pending}) >= self.max_requests:
            return True
        return max(item.length for item in self.pending) * len(self.pending) >= self.max_tokens

    def drop_abandoned(self) -> None:
        """Take out the inputs of jobs whose client went away, or that failed in an earlier batch."""
        kept = [item for item in self.pending if not (item.job.cancelled or item.job.error)]
        if len(kept) == len(self.pending):
            return
        dropped = [item for item in self.pending if item.job.cancelled and not item.job.error]
        self.metrics.count(self.metrics.dropped, amount=len(dropped))
        self.queued_tokens = sum(item.length for item in kept)
        self.pending = kept

    def fail_pending(self, error: BaseException) -> None:
        jobs = [job for job in {id(item.job): item.job for item in self.pending}.values() if not job.reported]
        for job in jobs:
            job.error, job.reported = error, True
        self.pending, self.queued_tokens = [], 0
        if jobs:
            self.finished(jobs)

    def run(self, batch: list[Item], sharing: int = 1, lead: bool = True) -> None:
        """Compute ``batch`` (``sharing``: the streams computing at its start, itself included; ``lead``: in the
        first stream) and hand on the jobs it finished."""
        started = time.perf_counter()
        jobs = list({id(item.job): item.job for item in batch}.values())
        try:
            self.compute(batch)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].error = exc
            else:  # run each request alone: only the one that fails fails
                for job in jobs:
                    try:
                        self.compute([item for item in batch if item.job is job])
                    except Exception as alone:
                        job.error = alone
        elapsed = time.perf_counter() - started
        tokens = sum(item.length for item in batch)
        longest = max(item.length for item in batch)
        with self.condition:
            self.running_tokens -= tokens
            self.busy -= 1
            if lead:
                self.lead_computing = False
            # The speed of all streams together: this one's, times the streams that shared the machine with it.
            speed = tokens / max(elapsed, 1e-6) * sharing
            self.rate = speed if self.rate is None else (1 - RATE_SMOOTHING) * self.rate + RATE_SMOOTHING * speed
            # A job's inputs may be in another stream's batch too: the stream that ends it hands it on, once.
            done = [job for job in jobs if not job.reported and (job.error is not None or job.remaining == 0)]
            for job in done:
                job.reported = True
        self.metrics.observe(self.metrics.inference_time, elapsed)
        self.metrics.observe(self.metrics.batch_inputs, len(batch))
        self.metrics.observe(self.metrics.batch_requests, len(jobs))
        self.metrics.count(self.metrics.tokens, "real", tokens)
        self.metrics.count(self.metrics.tokens, "padded", longest * len(batch))
        if done:
            self.finished(done)

    def compute(self, items: list[Item]) -> None:
        outputs, raw = self.forward([item.job.features[item.index] for item in items])
        with self.condition:
            for item, output, raw_output in zip(items, outputs, raw):
                item.job.outputs[item.index] = output
                item.job.raw[item.index] = raw_output
                item.job.remaining -= 1
