"""Regression metrics over predictions and references given, per row, as a list of numbers (one per target).

Plain Python with ``math.fsum`` (no numpy): a validation split is at most a few thousand rows, and exact sums keep the
values equal to scipy's and scikit-learn's to within rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from engine import EngineError, Metric


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def mse(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Mean squared error."""
    return _mean([(p - a) ** 2 for p, a in zip(predicted, actual)])


def rmse(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(predicted, actual))


def mae(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Mean absolute error."""
    return _mean([abs(p - a) for p, a in zip(predicted, actual)])


def r2(predicted: Sequence[float], actual: Sequence[float]) -> float:
    """Coefficient of determination. Constant references give 1.0 when predicted exactly, else 0.0 (as
    scikit-learn's ``r2_score`` does), so the value is always finite."""
    mean = _mean(actual)
    residual = math.fsum((a - p) ** 2 for p, a in zip(predicted, actual))
    total = math.fsum((a - mean) ** 2 for a in actual)
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's correlation. 0.0 when either side is constant: no correlation is shown, and a NaN would stop the
    best-model selection from ever improving on it."""
    mx, my = _mean(x), _mean(y)
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxx = math.fsum(v * v for v in dx)
    syy = math.fsum(v * v for v in dy)
    if sxx == 0 or syy == 0:
        return 0.0
    return math.fsum(a * b for a, b in zip(dx, dy)) / math.sqrt(sxx * syy)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2 + 1  # the mean of ranks start+1 .. end+1
        for k in range(start, end + 1):
            result[order[k]] = rank
        start = end + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on average ranks (ties handled as scipy does)."""
    return pearson(ranks(x), ranks(y))


SCORES: dict[str, Callable[[Sequence[float], Sequence[float]], float]] = {
    "mse": mse, "rmse": rmse, "mae": mae, "r2": r2, "pearson": pearson, "spearman": spearman,
}

DESCRIPTIONS = {
    "pearson": "Pearson correlation of predictions and targets (mean over targets).",
    "spearman": "Spearman rank correlation, ties at average ranks (mean over targets).",
    "mse": "Mean squared error, on the original scale (mean over targets).",
    "rmse": "Root mean squared error, on the original scale (mean over targets).",
    "mae": "Mean absolute error, on the original scale (mean over targets).",
    "r2": "Coefficient of determination (mean over targets).",
}


HIGHER_IS_BETTER = {"pearson", "spearman", "r2"}  # the rest are errors: mse, rmse, mae


def per_target(name: str, predictions: list[Sequence[float]], references: list[Sequence[float]],
               targets: Sequence[str]) -> dict[str, float]:
    """``name`` per target (``name_<target>``, when there are several) and its mean over targets (``name``)."""
    score = SCORES[name]
    width = len(references[0])
    values = [score([p[j] for p in predictions], [r[j] for r in references]) for j in range(width)]
    result = {name: _mean(values)}
    if width > 1:
        names = targets if len(targets) == width else [str(j) for j in range(width)]
        result.update({f"{name}_{target}": value for target, value in zip(names, values)})
    return result


def factory(name: str) -> Callable[[Any, Any], Metric]:
    """The metric hook's factory for ``name``: checks that the task predicts numbers."""

    def build(options: Any, task: Any) -> Metric:
        # A task that predicts numbers names them in ``targets``; anything else cannot be scored this way.
        if not isinstance(getattr(task, "targets", None), list):
            raise EngineError(
                f"metric {name!r} scores numeric predictions (task 'regression'); this task predicts something else. "
                "Pick metrics of its own (see `engine plugins --hook metric`)."
            )

        def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
            return per_target(name, predictions, references, task.targets)

        return compute

    build.__doc__ = DESCRIPTIONS[name]
    return build
