"""Training batches: every feature once an epoch, shares split between processes, and rows counted once however many
features they give (the progress bar and samples/s count rows)."""

import random

import pytest

from engine.data.features import starts_of
from engine.training.batching import Batches, LengthGroupedBatches, StreamBatches


def features_of(rows_features: list[int], seed: int = 0) -> list[dict]:
    """Features in encoding order: row r gives rows_features[r] consecutive features of random lengths."""
    rng = random.Random(seed)
    return [{"row": r, "length": rng.randint(1, 40)} for r, k in enumerate(rows_features) for _ in range(k)]


def rows_brute_force(features: list[dict], batch: list[int]) -> int:
    """Rows whose first feature is in ``batch``."""
    firsts = {min(i for i, f in enumerate(features) if f["row"] == r) for r in {f["row"] for f in features}}
    return sum(1 for i in batch if i in firsts)


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_an_epoch_covers_every_feature_once_and_counts_each_row_once(processes):
    features = features_of([random.Random(r).choice([1, 1, 1, 2, 3]) for r in range(101)])
    starts = starts_of([f["row"] for f in features])
    samplers = [LengthGroupedBatches([f["length"] for f in features], 4, seed=5, num_processes=processes, rank=rank,
                                     starts=starts) for rank in range(processes)]
    shares = [list(s) for s in samplers]
    seen = sorted(i for share in shares for batch in share for i in batch)
    assert sorted(set(seen)) == list(range(len(features))) and len(seen) - len(features) < processes  # top-ups
    global_batches = samplers[0].global_batches()
    assert len(global_batches) == len(samplers[0])
    for k, batch in enumerate(global_batches):
        for sampler in samplers:  # every process knows the whole batch's rows
            assert sampler.rows_in(k) == rows_brute_force(features, batch)
    assert sum(samplers[0].rows_in(k) for k in range(len(samplers[0]))) == 101


def test_without_row_starts_every_feature_is_a_row():
    sampler = LengthGroupedBatches(list(range(10)), 4, seed=1)
    list(sampler)
    assert [sampler.rows_in(k) for k in range(len(sampler))] == [4, 4, 2]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_stream_counts_rows_across_buffers_and_after_a_skip(processes, monkeypatch):
    monkeypatch.setattr("engine.training.batching.BUFFER_BATCHES", 2)  # buffers of 2 global batches: rows span buffers
    features = features_of([1, 3, 2, 1, 4, 1, 1, 2, 5, 1, 1, 3, 1], seed=3)
    per_process = []
    for rank in range(processes):
        stream = StreamBatches(features, 2, seed=7, num_processes=processes, rank=rank)
        stream.start_epoch(0)
        per_process.append([(len(batch), stream.rows_in(k)) for k, batch in enumerate(stream)])
    counts = [rows for _, rows in per_process[0]]
    assert all([rows for _, rows in share] == counts for share in per_process)
    assert sum(counts) == 13  # each row once, though several rows' features fall in two buffers
    assert sum(n for share in per_process for n, _ in share) == len(features)

    resumed = StreamBatches(features, 2, seed=7, num_processes=processes, rank=0)
    resumed.start_epoch(0, skip=3)
    assert [resumed.rows_in(k) for k, _ in enumerate(resumed, start=3)] == counts[3:]


def test_the_rows_of_whole_epochs_are_exact_and_a_streams_are_one_a_feature():
    features = features_of([1, 2, 1, 3, 1, 1, 2], seed=4)
    sampler = LengthGroupedBatches([f["length"] for f in features], 2, seed=1,
                                   starts=starts_of([f["row"] for f in features]))
    batches = Batches(sampler, loader=None, epoch_size=len(sampler))
    assert not batches.streaming
    assert batches.rows(len(sampler)) == 7 and batches.rows(3 * len(sampler)) == 21

    stream = Batches(StreamBatches(features, 2, seed=1, num_processes=3), loader=None, epoch_size=None)
    assert stream.streaming and stream.rows(5) == 5 * 2 * 3
