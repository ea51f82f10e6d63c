"""The smallest useful third-party task, written against engine.Task: it trains, predicts, and exports honestly."""

import json
import shutil
from collections import Counter
from pathlib import Path

from engine.testing import labelled_rows, tsv

MODULE = Path(__file__).with_name("minimal_task.py")


def test_a_task_of_under_60_lines_trains_predicts_and_exports_honestly(write_task, tiny_model_dir, run_engine):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert len(MODULE.read_text().splitlines()) < 60
    rows = labelled_rows(["negative", "positive"], 64, 1)
    path = write_task({"task": "focal", "plugins": ["minimal_task"],
                       "model": {"name": str(tiny_model_dir)}, "data": {"train": "train.tsv", "validation": "dev.tsv"},
                       "training": {"epochs": 6, "batch_size": 8, "seed": 7}, "optimizer": {"name": "adamw", "lr": 2e-3},
                       "output_dir": "run"},
                      {"train.tsv": tsv(rows), "dev.tsv": tsv(labelled_rows(["negative", "positive"], 16, 2))})
    shutil.copy(MODULE, path.parent / "minimal_task.py")
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    assert "DeprecationWarning" not in result.stderr and "deprecates" not in result.stderr
    accuracy = json.loads((path.parent / "run" / "metrics.json").read_text())["validation"]["accuracy"]
    assert accuracy >= 0.8, accuracy  # learned: the cue words tell the labels apart (chance is 0.5)

    predicted = run_engine("predict", path.parent / "run", "--input", path.parent / "dev.tsv")
    assert predicted.exit_code == 0, predicted.stderr
    labels = [json.loads(line)["prediction"]["label"] for line in predicted.stdout.splitlines()]
    assert len(labels) == 16 and set(labels) <= {"negative", "positive"}

    # engine.json says plain transformers loads it; it does, and predicts what engine predicts.
    model_dir = path.parent / "run" / "model"
    assert json.loads((model_dir / "engine.json").read_text())["transformers_loadable"] is True
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = [line.split("\t")[0] for line in (path.parent / "dev.tsv").read_text().splitlines()[1:]]
    with torch.no_grad():
        ids = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    assert [["negative", "positive"][i] for i in ids] == labels


def test_a_multiple_choice_task_trains_with_labels_per_row_and_counts_rows(write_task, tiny_model_dir, run_engine):
    import random

    rng = random.Random(0)

    def rows(n):  # the right answer is always "great", wherever it is among the choices
        lines = []
        for _ in range(n):
            choices = ["great", "awful", "the"]
            rng.shuffle(choices)
            lines.append(json.dumps({"text": f"the {rng.choice(['movie', 'film', 'food'])} was", "choices": choices,
                                     "label": choices.index("great")}))
        return "\n".join(lines) + "\n"

    path = write_task({"task": "multiple_choice", "plugins": ["multiple_choice"], "model": {"name": str(tiny_model_dir)},
                       "data": {"format": "jsonl", "train": "train.jsonl", "validation": "dev.jsonl",
                                "text": ["text", "choices"]},
                       "training": {"epochs": 8, "batch_size": 8, "seed": 7}, "optimizer": {"name": "adamw", "lr": 3e-3},
                       "output_dir": "run"}, {"train.jsonl": rows(48), "dev.jsonl": rows(16)})
    shutil.copy(MODULE.with_name("multiple_choice.py"), path.parent / "multiple_choice.py")
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run = path.parent / "run"
    assert json.loads((run / "metrics.json").read_text())["validation"]["accuracy"] >= 0.8  # chance: 1/3
    assert json.loads((run / "manifest.json").read_text())["training_time"]["samples"] == 8 * 48  # rows, not choices
    predicted = run_engine("predict", run, "--input", path.parent / "dev.jsonl")
    assert predicted.exit_code == 0, predicted.stderr
    assert len(predicted.stdout.splitlines()) == 16
    page = (run / "report" / "index.html").read_text()  # the task's own report section, from its predictions
    picked = Counter(json.loads(line)["prediction"]["label"] for line in (run / "predictions" / "validation.jsonl").open())
    assert "Answer positions: validation" in page
    assert f"<td>1</td><td>{picked['1']}</td>" in page
