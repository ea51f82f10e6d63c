"""A streamed task in a multi-task run: its stream is read once to count its batches, then its batches are read as
the sampler draws them, every feature once a pass, the same on every process, and a resume continues the same
sequence."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

import engine
from engine.training.batching import LengthGroupedBatches, StreamBatches, TaskBatches


def features_of(rows_features: list[int], seed: int) -> list[dict]:
    """Features in encoding order: row r gives rows_features[r] consecutive features of random lengths."""
    rng = random.Random(seed)
    return [{"row": r, "length": rng.randint(1, 40), "id": (r, i)} for r, k in enumerate(rows_features)
            for i in range(k)]


STREAM = features_of([random.Random(r).choice([1, 1, 2, 3]) for r in range(37)], seed=5)


def batches(rank: int = 0, processes: int = 1, sampler: str = "uniform") -> TaskBatches:
    samplers: dict = {name: LengthGroupedBatches(list(range(1, 8 * size + 1)), 2, 3, num_processes=processes,
                                                 rank=rank) for name, size in {"a": 3, "b": 1}.items()}
    samplers["s"] = StreamBatches(STREAM, 2, 3, num_processes=processes, rank=rank)
    return TaskBatches(samplers, sampler, 3)


def as_ids(items: list) -> list:
    return [(name, [f["id"] for f in part] if name == "s" else part) for name, part in items]


@pytest.fixture(autouse=True)
def small_buffers(monkeypatch):
    monkeypatch.setattr("engine.training.batching.BUFFER_BATCHES", 3)  # several buffers per pass, rows across them


def epoch(order: TaskBatches, number: int) -> list:
    order.start_epoch(number)
    return list(order)


@pytest.mark.parametrize("processes", [1, 2])
def test_the_count_is_the_batches_a_pass_gives_and_each_feature_comes_once_a_pass(processes):
    order = batches(processes=processes)
    stream = StreamBatches(STREAM, 2, 3, num_processes=processes, rank=0)
    stream.start_epoch(0)
    assert order.sizes["s"] == len(list(stream))
    assert order.stream_rows["s"] == 37
    # Uniform: the stream is drawn about a third of an epoch's batches; within an epoch, the stream's k-th batch
    # drawn is batch k % size of pass k // size. Over the processes, each pass gives every feature once.
    for number in range(3):
        shares = [epoch(batches(rank, processes), number) for rank in range(processes)]
        drawn = sum(name == "s" for name, _ in shares[0])
        passes = drawn // order.sizes["s"]
        seen = Counter(f["id"] for share in shares for name, part in share if name == "s" for f in part)
        if passes:
            assert set(seen) == {f["id"] for f in STREAM}  # a whole pass: every feature
        assert set(Counter(seen.values())) <= {passes, passes + 1}, seen  # and no feature twice in one pass


def test_every_process_draws_the_same_tasks_and_reads_its_own_share():
    ranks = [as_ids(list(batches(rank, 2))) for rank in range(2)]
    assert [name for name, _ in ranks[0]] == [name for name, _ in ranks[1]]
    for (name, share0), (_, share1) in zip(*ranks):
        assert share0 and share1 and not set(share0) & set(share1), name


@pytest.mark.parametrize("skip", [1, 5, 11, 17])
def test_a_resumed_epoch_continues_the_same_sequence(skip):
    whole = batches()
    whole.start_epoch(1)
    expected = as_ids(list(whole))
    resumed = batches()
    resumed.start_epoch(1, skip=skip)
    assert as_ids(list(resumed)) == expected[skip:]


def test_an_empty_stream_is_one_clear_error():
    samplers: dict = {"a": LengthGroupedBatches([1, 2, 3], 2, 3), "s": StreamBatches([], 2, 3)}
    with pytest.raises(engine.EngineError, match="task 's': its training stream has no rows"):
        TaskBatches(samplers, "proportional", 3)


def test_a_multi_task_run_trains_a_streamed_task_without_max_steps(multitask_files, tmp_path):
    task = multitask_files(tmp_path, epochs=2)
    task["tasks"]["sentiment"]["data"]["streaming"] = True
    (tmp_path / "task.json").write_text(json.dumps(task), encoding="utf-8")
    result = engine.train(tmp_path / "task.json")
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 2 * (4 + 3 + 2)  # the stream counted as its 30 rows at batch 8: 4 batches
    assert "sentiment.accuracy" in result.metrics["validation"]
    predictor = engine.load(result.run_dir)
    assert predictor.predict("john was good", task="sentiment")["label"] in {"bad", "good", "great"}
