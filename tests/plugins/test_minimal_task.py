"""The smallest useful third-party task, written against engine.Task: it trains, predicts, and exports honestly."""

import json
import shutil
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
