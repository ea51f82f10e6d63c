"""Predicting and scoring with a loaded model from Python: the same records and metrics as `engine predict` and
`engine evaluate` write, from the functions both commands call."""

import json

import pytest

from engine.errors import ConfigError
from engine.inference.loading import load_model, read_input
from engine.inference.predict import evaluate_split, predict_split, run_metrics
from engine.plugins.manager import load_plugins
from engine.testing import labelled_rows, tsv


@pytest.fixture
def trained(write_task, tiny_model_dir, run_engine):
    labels = ["bad", "good"]
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"}, "metrics": ["accuracy"],
                       "training": {"epochs": 1, "batch_size": 8, "seed": 3}, "output_dir": "run"},
                      {"train.tsv": tsv(labelled_rows(labels, 32, 1)), "dev.tsv": tsv(labelled_rows(labels, 20, 2))})
    assert run_engine("run", path).exit_code == 0
    return path.parent


def test_predict_split_gives_the_records_engine_predict_writes(trained, run_engine):
    out = trained / "predictions.jsonl"
    assert run_engine("predict", trained / "run", "-i", trained / "dev.tsv", "-o", out).exit_code == 0
    manager = load_plugins()
    loaded = load_model(trained / "run", manager)
    records = predict_split(loaded, read_input(loaded, manager, trained / "dev.tsv", labelled=False))
    assert len(records) == 20
    assert records == [json.loads(line) for line in out.read_text().splitlines()]


def test_evaluate_split_gives_the_metrics_engine_evaluate_writes(trained, run_engine):
    out = trained / "metrics.json"
    assert run_engine("evaluate", trained / "run", "-d", trained / "dev.tsv", "-o", out).exit_code == 0
    manager = load_plugins()
    loaded = load_model(trained / "run", manager)
    values = evaluate_split(loaded, manager, read_input(loaded, manager, trained / "dev.tsv", labelled=True))
    assert set(values) == {"loss", "accuracy"}  # the run's metrics, from its task.json
    assert values == pytest.approx(json.loads(out.read_text()))


def test_run_metrics_names_task_json_when_a_metric_is_not_available(trained):
    task_json = trained / "run" / "task.json"
    task = json.loads(task_json.read_text())
    task_json.write_text(json.dumps({**task, "metrics": ["accuracy", "acuracy"]}))
    manager = load_plugins()
    with pytest.raises(ConfigError) as info:
        run_metrics(load_model(trained / "run", manager), manager.registry())
    assert [issue.path for issue in info.value.issues] == ["metrics.1.name"]
    assert str(task_json) in str(info.value)
