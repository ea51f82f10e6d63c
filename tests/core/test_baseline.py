"""The score to beat: each built-in task's baseline (what a model that ignores the text predicts from the training
data) is scored with the run's metrics, printed beside the run's own, and kept in manifest.json; checked against
the same numbers worked out by hand."""

from __future__ import annotations

import json
import math
from collections import Counter

import engine


def run(write_task, tiny_model_dir, task, data, files, **sections):
    config = {"task": task, "model": {"name": str(tiny_model_dir)}, "data": data,
              "training": {"epochs": 1, "batch_size": 8, "seed": 13}, "output_dir": "runs/tiny", **sections}
    path = write_task(config, files)
    result = engine.train(path)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    return result, manifest


def test_classification_is_measured_against_the_most_frequent_training_label(write_task, tiny_model_dir,
                                                                             run_engine):
    train = [("a good film", "good")] * 5 + [("a bad film", "bad")] * 3 + [("a dull film", "meh")] * 2
    validation = [("good", "good"), ("bad", "bad"), ("bad one", "bad"), ("meh", "meh")]
    files = {"train.tsv": "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in train),
             "test.tsv": "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in validation)}
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "test.tsv", "test": "test.tsv"},
                       "metrics": ["accuracy", "f1_macro"], "training": {"epochs": 1, "batch_size": 8},
                       "output_dir": "runs/tiny"}, files)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((path.parent / "runs/tiny/manifest.json").read_text())
    baseline = manifest["baseline"]
    assert baseline["predicts"] == "the training data's most frequent label"
    # Always "good": right on 1 of 4; F1 per label: good 2*(1/4*1)/(1/4+1) = 0.4, bad 0, meh 0.
    for split in ("validation", "test"):
        assert baseline[split]["accuracy"] == 0.25
        assert math.isclose(baseline[split]["f1_macro"], 0.4 / 3)
    assert "validation baseline" in result.stdout and "test baseline" in result.stdout
    assert "baseline: the training data's most frequent label, the text ignored" in " ".join(result.stdout.split())


def test_regression_is_measured_against_the_training_mean(write_task, tiny_model_dir):
    train = [("a", 1.0), ("b", 2.0), ("c", 4.5), ("d", 0.5)]
    validation = [("e", 3.0), ("f", 1.0), ("g", 2.5)]
    files = {name: "text\tscore\n" + "".join(f"{t}\t{v}\n" for t, v in rows)
             for name, rows in (("train.tsv", train), ("validation.tsv", validation))}
    result, manifest = run(write_task, tiny_model_dir, "regression",
                           {"train": "train.tsv", "validation": "validation.tsv", "label": "score"}, files)
    mean = sum(v for _, v in train) / len(train)  # 2.0
    mse = sum((v - mean) ** 2 for _, v in validation) / len(validation)
    values = manifest["baseline"]["validation"]
    assert math.isclose(values["mse"], mse) and math.isclose(values["mae"], (1 + 1 + 0.5) / 3)
    assert values["pearson"] == 0.0  # a constant: no correlation shown
    assert result.baseline == {"validation": values} and result.baseline_name == "the training data's mean"


def test_tagging_is_measured_against_no_entity(write_task, tiny_model_dir):
    sentences = [[("john", "B-PER"), ("lives", "O"), ("in", "O"), ("paris", "B-LOC")],
                 [("mary", "B-PER"), ("smith", "I-PER"), ("was", "O"), ("here", "O")]]
    conll = "\n".join("".join(f"{w}\t{t}\n" for w, t in s) for s in sentences)
    _, manifest = run(write_task, tiny_model_dir, "tagging",
                      {"format": "conll", "separator": "\t", "train": "train.conll", "validation": "train.conll"},
                      {"train.conll": conll})
    values = manifest["baseline"]["validation"]
    tags = Counter(t for s in sentences for _, t in s)
    assert values["entity_f1"] == 0.0 and values["entity_recall"] == 0.0
    assert math.isclose(values["token_accuracy"], tags["O"] / sum(tags.values()))

