"""The real CLI on the packaged all-MiniLM-L6-v2 and a few dozen rows of the bundled example."""

import json
import shutil
from pathlib import Path

import pytest

from engine.testing import engine_process

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment"


engine = engine_process  # the CLI in a fresh process, as a user runs it


@pytest.mark.e2e
def test_example_task_trains_predicts_and_evaluates(tmp_path):
    for name in ("train.tsv", "validation.tsv"):
        lines = (EXAMPLE / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / name).write_text("".join(lines[: 49 if name == "train.tsv" else 25]), encoding="utf-8")
    shutil.copy(EXAMPLE / "task.json", tmp_path / "task.json")

    result = engine("run", "task.json", "--set", "training.epochs=1", "--set", 'training.report_to=["tensorboard"]',
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout
    run_dir = tmp_path / "runs" / "sentiment"
    # The "must show": a report with a learning curve and a confusion matrix, TensorBoard's loss scalar.
    report = run_dir / "report"
    assert {"index.html", "learning_curves.svg", "confusion_matrix.svg"} <= {p.name for p in report.iterdir()}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("train/loss")) == json.loads((run_dir / "manifest.json").read_text())["steps"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["packages"]["torch"] and manifest["transformers_loadable"] is True

    result = engine("predict", run_dir, "--input", "validation.tsv", "--output", "predictions.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and {p["label"] for p in predictions} <= {"negative", "positive"}

    result = engine("evaluate", run_dir, "--data", "validation.tsv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{metrics['validation']['accuracy']:.4f}" in result.stdout
