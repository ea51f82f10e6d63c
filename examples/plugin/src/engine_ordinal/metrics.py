"""Metrics for ordered labels: quadratic weighted kappa and mean absolute error in ranks. No torch: counting.

They serve any task whose labels have an order: ``ordinal`` (its ``levels``) and single-label ``classification``
(its ``labels``, sorted as the task sorts them, numbers as numbers). Predictions are ``{"label": name, ...}``,
references are names, as those tasks give them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import EngineError

Metric = Callable[[list[Any], list[Any]], dict[str, float]]


def levels_of(task: Any, metric: str) -> Callable[[], list[str]]:
    """The task's labels in order (read when computing: a task learns them in ``fit``), or an error saying the
    metric does not fit the task."""
    attribute = "levels" if hasattr(task, "levels") else "labels"
    multi = getattr(getattr(task, "options", None), "multi_label", False)
    if not hasattr(task, attribute) or multi:
        raise EngineError(f"metric {metric!r} measures ordered single labels; task {type(task).__name__} has none "
                          f"(use it with the 'ordinal' task or single-label 'classification')")
    return lambda: list(getattr(task, attribute))


def _ranks(values: list[Any], levels: list[str]) -> list[int]:
    index = {name: k for k, name in enumerate(levels)}
    return [index[str(v["label"] if isinstance(v, dict) else v)] for v in values]


def kappa(predicted: list[int], actual: list[int], k: int) -> float:
    """Quadratic weighted kappa of two rank lists over ``k`` levels (1 = agreement, 0 = chance)."""
    n = len(actual)
    if n == 0:
        return 0.0
    observed = [[0.0] * k for _ in range(k)]
    for p, a in zip(predicted, actual):
        observed[a][p] += 1
    rows = [sum(observed[i]) for i in range(k)]
    cols = [sum(observed[i][j] for i in range(k)) for j in range(k)]
    weight = lambda i, j: (i - j) ** 2 / (k - 1) ** 2  # noqa: E731
    disagreement = sum(weight(i, j) * observed[i][j] for i in range(k) for j in range(k))
    expected = sum(weight(i, j) * rows[i] * cols[j] / n for i in range(k) for j in range(k))
    if expected == 0:
        # Both sides put everything on one level: perfect if it is the same level, else no better than chance.
        return 1.0 if disagreement == 0 else 0.0
    return 1.0 - disagreement / expected


def quadratic_kappa(options: Any, task: Any) -> Metric:
    """Quadratic weighted kappa: agreement beyond chance, far misses weighted by the squared distance."""
    levels = levels_of(task, "qwk")

    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        order = levels()
        return {"qwk": kappa(_ranks(predictions, order), _ranks(references, order), len(order))}

    return compute


def rank_mae(options: Any, task: Any) -> Metric:
    """Mean absolute error in ranks: how many levels off a prediction is, on average."""
    levels = levels_of(task, "rank_mae")

    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        predicted, actual = _ranks(predictions, levels()), _ranks(references, levels())
        return {"rank_mae": sum(abs(p - a) for p, a in zip(predicted, actual)) / len(actual) if actual else 0.0}

    return compute
