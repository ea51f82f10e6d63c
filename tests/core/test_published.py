"""Is this good? A task file that names its public benchmark (``data.benchmark``) gets the task's published scores
on it printed beside its own, nearest model size first, and kept in manifest.json; a name the task does not know
says which it knows."""

from __future__ import annotations

import json
from types import SimpleNamespace

from engine.inference.scores import known_benchmarks, published_beside
from engine.task import PublishedScore, Task


class Scored(Task):
    published_scores = (
        PublishedScore("bench", "accuracy", 0.93, "big", "dev", "paper A", 24, 1024),
        PublishedScore("bench", "accuracy", 0.91, "same size", "test", "paper B", 6, 384),
        PublishedScore("bench", "accuracy", 0.92, "near", "test", "paper C", 12, 384),
        PublishedScore("bench", "f1_macro", 0.90, "a metric the run has not", "test", "paper D", 6, 384),
        PublishedScore("other", "accuracy", 0.99, "another benchmark", "test", "paper E", 6, 384),
    )


def test_the_run_s_own_score_sits_beside_each_published_one_nearest_size_first():
    config = SimpleNamespace(num_hidden_layers=6, hidden_size=384)
    results = {"validation": {"accuracy": 0.80}, "test": {"accuracy": 0.85}}
    rows = published_beside(Scored(), "bench", results, config)
    assert [row["model"] for row in rows] == ["same size", "near", "big"]
    assert [row["same_size"] for row in rows] == [True, False, False]
    assert {(row["run"], row["run_split"]) for row in rows} == {(0.85, "test")}  # test first, when scored
    assert rows[0] == {"benchmark": "bench", "metric": "accuracy", "published": 0.91, "model": "same size",
                       "published_split": "test", "source": "paper B", "same_size": True, "run": 0.85,
                       "run_split": "test"}
    # Without a test split, the validation score; without a benchmark, or with no scores, nothing.
    assert {row["run_split"] for row in published_beside(Scored(), "bench", {"validation": {"accuracy": 0.8}},
                                                         config)} == {"validation"}
    assert published_beside(Scored(), None, results, config) == []
    assert published_beside(Task(), "bench", results, config) == []
    assert known_benchmarks(Scored()) == ["bench", "other"]


def test_a_run_naming_sst2_prints_the_published_scores_and_keeps_them(write_task, tiny_model_dir, run_engine):
    rows = [("a good film", "1"), ("a bad film", "0")] * 4
    files = {"train.tsv": "sentence\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows)}
    config = {"task": "classification", "model": {"name": str(tiny_model_dir)},
              "data": {"train": "train.tsv", "validation": "train.tsv", "text": "sentence", "benchmark": "sst2"},
              "training": {"epochs": 1, "batch_size": 8}, "output_dir": "runs/tiny"}
    path = write_task(config, files)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((path.parent / "runs/tiny/manifest.json").read_text())
    metrics = json.loads((path.parent / "runs/tiny/metrics.json").read_text())
    (entry,) = manifest["published"]
    assert entry["benchmark"] == "sst2" and entry["task"] is None and "sst2" in entry["known"]
    bert = next(row for row in entry["scores"] if row["model"] == "BERT-base, uncased")
    assert (bert["metric"], bert["published"], bert["published_split"]) == ("accuracy", 0.935, "GLUE test")
    assert (bert["run"], bert["run_split"]) == (metrics["validation"]["accuracy"], "validation")
    out = " ".join(result.stdout.split())
    assert f"published on sst2, beside this run's accuracy {metrics['validation']['accuracy']:.4f}" in out
    assert "0.9350 BERT-base, uncased; GLUE test; Devlin et al. 2019" in out

    # A benchmark the task has no scores for: one line naming those it has, and the run goes on as ever.
    config["data"]["benchmark"] = "imdb"
    result = run_engine("run", write_task(config, files), "--overwrite")
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "no published score known for data.benchmark 'imdb'" in out and "known benchmarks: sst2" in out


def test_without_a_benchmark_nothing_is_printed_or_kept(write_task, tiny_model_dir):
    import engine

    files = {"train.tsv": "text\tscore\n" + "".join(f"{t}\t{v}\n" for t, v in [("a", 1.0), ("b", 2.0)] * 4)}
    path = write_task({"task": "regression", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "train.tsv", "label": "score"},
                       "training": {"epochs": 1, "batch_size": 8}, "output_dir": "runs/tiny"}, files)
    result = engine.train(path)
    assert result.published == []
    assert "published" not in json.loads((result.run_dir / "manifest.json").read_text())
