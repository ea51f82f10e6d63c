"""The real CLI on the packaged all-MiniLM-L6-v2 and a few dozen pairs of the bundled regression example."""

import json
import shutil
from pathlib import Path

import pytest

from engine.testing import engine_process

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "regression"


engine = engine_process  # the CLI in a fresh process, as a user runs it


@pytest.mark.e2e
def test_example_task_trains_on_pairs_and_predicts_scores_in_bounds(tmp_path):
    for name, rows in (("train.tsv", 48), ("validation.tsv", 24)):
        lines = (EXAMPLE / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / name).write_text("".join(lines[: rows + 1]), encoding="utf-8")
    shutil.copy(EXAMPLE / "task.json", tmp_path / "task.json")

    result = engine("run", "task.json", "--set", "training.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "captions"
    validation = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert {"pearson", "spearman", "rmse", "mae", "r2", "mse"} <= set(validation)
    assert -1.0 <= validation["pearson"] <= 1.0 and validation["rmse"] >= 0
    assert json.loads((run_dir / "manifest.json").read_text())["transformers_loadable"] is True

    result = engine("predict", run_dir, "--input", "validation.tsv", "--output", "predictions.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 24
    assert all(set(p) == {"text", "text_pair", "value"} and 0.0 <= p["value"] <= 5.0 for p in predictions)
    assert len({p["value"] for p in predictions}) > 1

    result = engine("evaluate", run_dir, "--data", "validation.tsv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{validation['pearson']:.4f}" in result.stdout
