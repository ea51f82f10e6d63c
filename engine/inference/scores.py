"""Scores and predictions written out: metrics computed from a split's predictions, and the JSONL files of
predictions that the run directory and `engine predict` write."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import write_lines, write_text
from engine.data.features import predictions_of
from engine.data.split import Split


@dataclass
class Scores:
    """One split scored: its metrics, and the predictions and references they came from (one per row)."""

    values: dict[str, float]
    predictions: list[Any]
    references: list[Any]


def compute_metrics(task: Any, metrics: list[Any], split: Split, features: Any,
                    outputs: list[Any], loss: float | None) -> Scores:
    predictions = predictions_of(task, split, features, outputs)
    references = task.references(split)
    values: dict[str, float] = {}
    if loss is not None:
        values["loss"] = loss
    values.update(metric_values(metrics, predictions, references))
    return Scores(values, predictions, references)


def metric_values(metrics: list[Any], predictions: list[Any], references: list[Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric in metrics:
        values.update(metric(predictions, references))
    return values


def baseline_values(task: Any, metrics: list[Any], train: Split, split: Split) -> dict[str, float | None] | None:
    """``split`` scored by the metrics on what the task's baseline predicts (``Task.baseline``: what a model that
    ignores the text predicts from ``train``), or None when the task has no baseline. A value that is not a finite
    number becomes None (JSON has no NaN)."""
    predictions = getattr(task, "baseline", lambda train, split: None)(train, split)
    if predictions is None:
        return None
    values = metric_values(metrics, predictions, task.references(split))
    return {k: v if isinstance(v, (int, float)) and math.isfinite(v) else None for k, v in values.items()}


def published_beside(task: Any, benchmark: str | None, results: dict[str, dict[str, float]],
                     config: Any) -> list[dict[str, Any]]:
    """The task's published scores on ``benchmark`` (``Task.published_scores``) whose metric the run computed, each
    with the run's own value (of its test split, else its validation split): models of the run's size first (the
    backbone's ``config``: layers, hidden size), then the nearest. [] without a benchmark or a known score."""
    if not benchmark:
        return []
    size = (getattr(config, "num_hidden_layers", None), getattr(config, "hidden_size", None))
    rows = []
    for score in getattr(task, "published_scores", ()):
        found = next(((split, results[split][score.metric]) for split in ("test", "validation")
                      if isinstance(results.get(split, {}).get(score.metric), (int, float))), None)
        if score.benchmark != benchmark or found is None:
            continue
        distance = sum(abs(math.log2(mine / theirs)) for mine, theirs in zip(size, (score.layers, score.hidden_size))
                       if mine and theirs)
        rows.append((distance, {"benchmark": score.benchmark, "metric": score.metric, "published": score.value,
                                "model": score.model, "published_split": score.split, "source": score.source,
                                "same_size": (score.layers, score.hidden_size) == size, "run": found[1],
                                "run_split": found[0]}))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def known_benchmarks(task: Any) -> list[str]:
    """The benchmarks the task knows published scores of."""
    return sorted({score.benchmark for score in getattr(task, "published_scores", ())})


def write_predictions(path: Path, split: Split, scores: Scores) -> None:
    """RUN_DIR/predictions/SPLIT.jsonl: per row, its line in the data file, the prediction and the reference (what
    the run report reads), written whole or not at all."""
    lines = (row[-1] for row in split.values())
    write_lines(path, (json.dumps({"line": line, "prediction": prediction, "reference": reference},
                                  ensure_ascii=False, default=str) + "\n"
                       for line, prediction, reference in zip(lines, scores.predictions, scores.references)))


def write_jsonl(rows: list[dict[str, Any]], output: Path | None) -> None:
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.write(lines)
        return
    write_text(output, lines)
