"""Predicting and scoring with a loaded model: what `engine predict` and `engine evaluate` do once the model is
loaded and its input read, for every caller (the CLI, Python code, a server) to share.

    loaded = load_model(run_dir, manager)
    records = predict_split(loaded, read_input(loaded, manager, Path("new.tsv"), labelled=False))
    metrics = evaluate_split(loaded, manager, read_input(loaded, manager, Path("test.tsv"), labelled=True))

Under a distributed launch every process computes the same result; one writes it (``is_main_process``).
"""

from __future__ import annotations

import json
from typing import Any

from engine.config.choice import Choice, resolve_choice
from engine.data.features import predictions_of
from engine.data.split import Split
from engine.errors import ConfigError, ConfigIssue
from engine.inference.loading import LoadedModel
from engine.inference.loop import Placed, run_inference
from engine.inference.scores import compute_metrics
from engine.plugins.manager import PluginManager
from engine.registry import Registry


def predict_split(loaded: LoadedModel, split: Split, *, batch_size: int = 64, quantize: str | None = None,
                  placed: Placed | None = None) -> list[dict[str, Any]]:
    """One record per row of ``split``, in its order, as `engine predict` writes them: the task's
    ``format_prediction`` of the row and its prediction. ``quantize="int8"``: the encoder in int8, on the CPU;
    ``placed``: the model placed (and quantized) once before, by ``place_model``."""
    result = run_inference(loaded, split, batch_size, labelled=False, description="predict", quantize=quantize,
                           placed=placed)
    predictions = predictions_of(loaded.task, split, result.features, result.outputs)
    return [loaded.task.format_prediction(row, p) for row, p in zip(split.rows, predictions)]


def evaluate_split(loaded: LoadedModel, manager: PluginManager, split: Split, *, batch_size: int = 64,
                   quantize: str | None = None, placed: Placed | None = None) -> dict[str, float]:
    """The run's metrics (``run_metrics``) on a labelled ``split``, and its loss, by name (``quantize`` and
    ``placed`` as for ``predict_split``)."""
    loaded.task.check(split)
    choices = run_metrics(loaded, manager.registry())
    result = run_inference(loaded, split, batch_size, labelled=True, description="evaluate", quantize=quantize,
                           placed=placed)
    metrics = [choice.build(loaded.task) for choice in choices]
    return compute_metrics(loaded.task, metrics, split, result.features, result.outputs, result.loss).values


def run_metrics(loaded: LoadedModel, registry: Registry) -> list[Choice]:
    """The metrics the run computed: its task.json's ``metrics``, or the task's default ones for a model folder
    without its run directory. A ConfigError (naming task.json) when a metric is not available here."""
    task_json = loaded.directory.parent / "task.json"
    written = json.loads(task_json.read_text()) if task_json.is_file() else None
    if written is not None and loaded.name is not None:  # a multi-task run: the task's own section
        written = written["tasks"][loaded.name]
    raw = written["metrics"] if written is not None else loaded.task.defaults.get("metrics", [])
    issues: list[ConfigIssue] = []
    choices = [resolve_choice(registry, "metric", m, f"metrics.{i}", issues) for i, m in enumerate(raw)]
    if issues:
        raise ConfigError(issues, task_json)
    return [choice for choice in choices if choice]
