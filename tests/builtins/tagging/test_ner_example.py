"""The real CLI on the packaged all-MiniLM-L6-v2 and a few dozen tweets of the bundled NER example."""

import json
import shutil
from pathlib import Path

import pytest

from engine.testing import engine_process

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ner"


engine = engine_process  # the CLI in a fresh process, as a user runs it


def first_sentences(name, n):
    blocks = (EXAMPLE / name).read_text(encoding="utf-8").split("\n\n")
    return "\n\n".join(blocks[:n]) + "\n\n"


@pytest.mark.e2e
def test_example_task_trains_a_crf_tagger_predicts_and_evaluates(tmp_path):
    (tmp_path / "train.conll").write_text(first_sentences("train.conll", 48), encoding="utf-8")
    (tmp_path / "validation.conll").write_text(first_sentences("validation.conll", 24), encoding="utf-8")
    shutil.copy(EXAMPLE / "task.json", tmp_path / "task.json")
    shutil.copy(EXAMPLE / "sentences.txt", tmp_path / "sentences.txt")

    result = engine("run", "task.json", "--set", "training.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "ner"
    validation = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert {"entity_f1", "entity_precision", "entity_recall", "token_accuracy", "entity_f1/PER"} <= set(validation)
    assert 0.0 <= validation["entity_f1"] <= 1.0
    assert json.loads((run_dir / "manifest.json").read_text())["transformers_loadable"] is False

    result = engine("predict", run_dir, "--input", "sentences.txt", "--output", "predictions.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    lines = (tmp_path / "sentences.txt").read_text().splitlines()
    assert [p["text"] for p in predictions] == lines
    for p in predictions:
        assert len(p["tags"]) == len(p["tokens"]) == len(p["text"].split())
        assert all(p["text"][e["start_char"]:e["end_char"]] == e["text"] for e in p["entities"])

    result = engine("evaluate", run_dir, "--data", "validation.conll", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{validation['entity_f1']:.4f}" in result.stdout
