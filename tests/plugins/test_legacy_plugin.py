"""A task plugin written for engine 0.1 (``encode(split, ...)``, no base class) keeps working, with one deprecation
warning that names it and the method to implement instead."""

import json
import shutil
from pathlib import Path

from engine.testing import labelled_rows, tsv


def test_an_engine_0_1_task_plugin_trains_and_predicts_with_a_deprecation_warning(write_task, tiny_model_dir,
                                                                                  run_engine):
    rows = labelled_rows(["1", "2", "3"], 24, 1)
    path = write_task({"task": "legacy_ordinal", "plugins": ["legacy_ordinal"], "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"},
                       "training": {"epochs": 1, "batch_size": 8}, "output_dir": "run"},
                      {"train.tsv": tsv(rows), "dev.tsv": tsv(rows[:9])})
    shutil.copy(Path(__file__).with_name("legacy_ordinal.py"), path.parent / "legacy_ordinal.py")
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    warning = " ".join(result.stderr.split())
    assert "legacy_ordinal.OrdinalTask implements encode(split, ...), which engine 0.2 deprecates" in warning
    assert "implement encode_batch(rows, tokenizer, max_length, labelled) instead" in warning
    assert set(json.loads((path.parent / "run" / "metrics.json").read_text())["validation"]) == {"loss"}
    predicted = run_engine("predict", path.parent / "run", "--input", path.parent / "dev.tsv")
    assert predicted.exit_code == 0, predicted.stderr
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(lines) == 9 and all(line["label"] in {"1", "2", "3"} for line in lines)


def test_the_export_claim_holds_for_a_task_that_names_no_labels(write_task, tiny_model_dir, run_engine):
    """The task's hf_config() is {} (allowed) and its head has 3 outputs (4 levels): engine.json's claim that plain
    transformers loads the model must be true, with the head's output count."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = labelled_rows(["1", "2", "3", "4"], 32, 1)
    path = write_task({"task": "legacy_ordinal", "plugins": ["legacy_ordinal"], "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"},
                       "training": {"epochs": 1, "batch_size": 8}, "output_dir": "run"},
                      {"train.tsv": tsv(rows), "dev.tsv": tsv(rows[:8])})
    shutil.copy(Path(__file__).with_name("legacy_ordinal.py"), path.parent / "legacy_ordinal.py")
    assert run_engine("run", path).exit_code == 0
    model_dir = path.parent / "run" / "model"
    assert json.loads((model_dir / "engine.json").read_text())["transformers_loadable"] is True
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    assert model.config.num_labels == 3
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tokenizer(["a b c"], return_tensors="pt")).logits
    assert logits.shape == (1, 3)
