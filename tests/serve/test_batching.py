"""How batches form: the oldest input first, then the inputs closest to it in length, within the token budget, the
request limit and 1.5 times the shortest length; and the model's thread taking what waits when it is free (or once the
first input has waited --max-wait-ms)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from engine.serve.batching import Batcher, Item, Job, form_batch, similar
from engine.serve.metrics import Metrics


def job(*lengths: int) -> Job:
    return Job([{"length": n, "row": i} for i, n in enumerate(lengths)])


def items(*jobs: Job) -> list[Item]:
    return [Item(j, i, n) for j in jobs for i, n in enumerate(j.lengths)]


def test_the_oldest_input_goes_first_with_the_closest_lengths_under_the_budget():
    a, b, c = job(20), job(30, 100), job(21, 19, 60)
    pending = items(a, b, c)
    assert [(id(i.job), i.length) for i in form_batch(pending, 1000, None)] == [
        (id(a), 20), (id(c), 21), (id(c), 19)]  # 30, 60 and 100 are over 1.5 times the shortest (19)
    assert [i.length for i in form_batch(items(job(20), job(28), job(19), job(60)), 1000, None)] == [20, 19, 28]
    assert [i.length for i in form_batch(pending, 63, None)] == [20, 21, 19]  # 3 x 21 = 63 tokens
    assert [i.length for i in form_batch(pending, 40, None)] == [20, 19]  # 2 x 21 = 42: over; 2 x 20 fits
    assert [i.length for i in form_batch(pending, 39, None)] == [20]
    assert [i.length for i in form_batch(items(job(500), job(10)), 100, None)] == [500]  # alone, over the budget


def test_max_batch_requests_1_batches_one_request_s_inputs_only():
    a, b = job(20, 22), job(21)
    assert [(id(i.job), i.length) for i in form_batch(items(a, b), 1000, 1)] == [(id(a), 20), (id(a), 22)]
    assert [i.length for i in form_batch(items(a, b), 1000, 2)] == [20, 21, 22]


def test_inputs_share_a_batch_within_one_and_a_half_times_the_shortest_or_a_few_tokens():
    assert similar(20, 30) and not similar(20, 31)
    assert similar(3, 11) and not similar(3, 12)  # 8 tokens of slack for short inputs
    assert similar(100, 150) and not similar(100, 151)


def test_every_batch_holds_the_oldest_input_and_keeps_the_limits():
    rng = random.Random(0)
    for _ in range(300):
        jobs = [job(*(rng.choice([rng.randint(4, 30), rng.randint(40, 90), 128]) for _ in range(rng.randint(1, 4))))
                for _ in range(rng.randint(1, 12))]
        pending = items(*jobs)
        budget, limit = rng.choice([64, 512, 4096]), rng.choice([None, 1, 3])
        batch = form_batch(pending, budget, limit)
        lengths = [i.length for i in batch]
        assert batch[0] is pending[0]
        assert len({id(i) for i in batch}) == len(batch)
        assert len(batch) == 1 or max(lengths) * len(batch) <= budget
        assert limit is None or len({id(i.job) for i in batch}) <= limit
        assert similar(min(lengths), max(lengths))


class Recorder:
    """A model: records each batch's lengths; held while ``hold`` is clear."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.finished: list[Job] = []

    def forward(self, features: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        self.hold.wait(10)
        self.batches.append([f["length"] for f in features])
        return [f["length"] for f in features], [None] * len(features)

    def done(self, jobs: list[Job]) -> None:
        self.finished += jobs


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_batch_forms_when_the_model_is_free_from_what_waits_by_length():
    model = Recorder()
    batcher = Batcher(model.forward, model.done, Metrics(), max_batch_tokens=10_000, max_batch_requests=None,
                      max_wait_ms=0)
    batcher.start()
    model.hold.clear()
    batcher.submit(job(10))
    wait_until(lambda: not batcher.depth)  # the model took it at once, alone
    for lengths in ((12,), (100, 11), (90,), (13,)):
        batcher.submit(job(*lengths))
    model.hold.set()
    wait_until(lambda: len(model.finished) == 5)
    batcher.stop()
    assert model.batches == [[10], [12, 11, 13], [100, 90]]
    assert [j.outputs for j in model.finished[1:]] == [[12], [13], [100, 11], [90]]


def test_max_wait_ms_lets_a_batch_wait_for_more_inputs_and_a_cancelled_job_is_dropped():
    model = Recorder()
    metrics = Metrics()
    batcher = Batcher(model.forward, model.done, metrics, max_batch_tokens=10_000, max_batch_requests=None,
                      max_wait_ms=200)
    batcher.start()
    first, gone, last = job(10), job(11), job(12)
    batcher.submit(first)
    batcher.submit(gone)
    gone.cancelled = True
    time.sleep(0.05)
    batcher.submit(last)
    wait_until(lambda: len(model.finished) == 2)
    batcher.stop()
    assert model.batches == [[10, 12]]
    assert "engine_dropped_inputs_total 1" in metrics.render()


def test_what_waits_at_stop_fails_with_a_reason():
    model = Recorder()
    batcher = Batcher(model.forward, model.done, Metrics(), max_batch_tokens=10_000, max_batch_requests=1,
                      max_wait_ms=0)
    batcher.start()
    model.hold.clear()
    batcher.submit(job(10))
    wait_until(lambda: not batcher.depth)
    waiting = job(11)
    batcher.submit(waiting)
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    model.hold.set()
    stopper.join(10)
    assert "shut down before computing" in str(waiting.error)


def test_after_batch_is_called_after_every_batch_even_with_inputs_waiting():
    # An overloaded server's queue never empties: a hook that waited for that (the memory trim did) never ran, and
    # the server's memory grew step by step.
    model, called_at = Recorder(), []
    batcher = Batcher(model.forward, model.done, Metrics(), max_batch_tokens=10_000, max_batch_requests=1,
                      max_wait_ms=0, after_batch=lambda: called_at.append(len(model.batches)))
    batcher.start()
    model.hold.clear()
    batcher.submit(job(10))
    wait_until(lambda: not batcher.depth)
    batcher.submit(job(20))
    batcher.submit(job(30))
    model.hold.set()
    wait_until(lambda: len(model.finished) == 3)
    wait_until(lambda: len(called_at) == 3)
    batcher.stop()
    assert called_at == [1, 2, 3]  # after the first two batches too, while inputs were still waiting


class Gate(Recorder):
    """A model whose batches wait at a gate: ``inside`` counts those computing at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock, self.inside, self.most = threading.Lock(), 0, 0
        self.streams: list[str] = []  # the thread of each batch

    def forward(self, features: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.streams.append(threading.current_thread().name)
        try:
            return super().forward(features)
        finally:
            with self.lock:
                self.inside -= 1


def test_streams_compute_batches_side_by_side_and_a_job_split_between_them_finishes_once():
    model = Gate()
    batcher = Batcher(model.forward, model.done, Metrics(), max_batch_tokens=40, max_batch_requests=None,
                      max_wait_ms=0, streams=2)
    batcher.start()
    model.hold.clear()
    split = job(20, 20, 20, 20)  # two batches of two under the budget: one in each stream
    batcher.submit(split)
    wait_until(lambda: model.inside == 2)
    assert batcher.busy == 2 and batcher.depth == 0
    model.hold.set()
    wait_until(lambda: model.finished)
    batcher.submit(job(5))
    wait_until(lambda: len(model.finished) == 2)
    batcher.stop()
    assert model.finished[0] is split and split.outputs == [20, 20, 20, 20]
    assert sorted(map(len, model.batches)) == [1, 2, 2] and model.most == 2
    assert not any(thread.is_alive() for thread in batcher.threads)


def test_a_stream_that_fails_fails_only_its_job_and_stop_ends_every_stream():
    model = Gate()
    failing = job(30)

    def forward(features: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        if any(f["length"] == 30 for f in features):
            raise ValueError("this input breaks the model")
        return model.forward(features)

    batcher = Batcher(forward, model.done, Metrics(), max_batch_tokens=10_000, max_batch_requests=None,
                      max_wait_ms=0, streams=3)
    batcher.start()
    model.hold.clear()
    fine = job(10)
    batcher.submit(fine)
    wait_until(lambda: model.inside == 1)
    batcher.submit(failing)
    wait_until(lambda: failing in model.finished)
    waiting = [job(11), job(100)]  # taken by the third stream, or still waiting at stop
    for each in waiting:
        batcher.submit(each)
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    model.hold.set()
    stopper.join(10)
    assert "breaks the model" in str(failing.error) and fine.error is None and fine.outputs == [10]
    assert len(model.finished) == len({id(j) for j in model.finished}) == 4  # each job handed on once
    assert not any(thread.is_alive() for thread in batcher.threads)


def test_the_first_stream_takes_work_whenever_it_is_free_and_the_others_only_beside_it():
    # Under light load one stream does everything, with every thread: a request that went to another stream would
    # run on one thread, slower. That holds too for a request arriving while the first stream is between batches.
    model, between, go_on = Gate(), threading.Event(), threading.Event()

    def after_batch() -> None:
        if threading.current_thread().name == "engine-serve-model-0" and not go_on.is_set():
            between.set()
            go_on.wait(10)

    batcher = Batcher(model.forward, model.done, Metrics(), max_batch_tokens=10_000, max_batch_requests=None,
                      max_wait_ms=0, streams=3, after_batch=after_batch)
    batcher.start()
    batcher.submit(job(10))
    between.wait(10)  # the first stream computed it and is not back for more yet
    batcher.submit(job(11))
    time.sleep(0.1)
    assert batcher.depth == 1  # no other stream took it
    go_on.set()
    for n in range(2, 5):
        wait_until(lambda n=n: len(model.finished) == n)
        batcher.submit(job(10 + n))
    wait_until(lambda: len(model.finished) == 5)
    assert model.streams == ["engine-serve-model-0"] * 5
    model.hold.clear()
    batcher.submit(job(10))
    wait_until(lambda: model.inside == 1)
    batcher.submit(job(100))  # the first stream computes: another takes this one beside it
    wait_until(lambda: model.inside == 2)
    model.hold.set()
    wait_until(lambda: len(model.finished) == 7)
    batcher.stop()
    assert model.streams[5] == "engine-serve-model-0" and model.streams[6] != "engine-serve-model-0"
