"""Regression's sections of the run report: predicted against true values, and the residuals, per target."""

from __future__ import annotations

import math
from typing import Any

from engine import Report
from engine.report.charts import PURPLE, RED, Panel, figure

MAX_TARGETS = 6  # targets plotted; the table has them all


def _values(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, list) else [float(value)]


def regression_report(report: Report, split: str, predictions: list[Any], references: list[Any],
                      targets: list[str] | None) -> None:
    predicted, true = [_values(p) for p in predictions], [_values(r) for r in references]
    width = len(true[0]) if true else 0
    names = targets if targets and len(targets) == width else ["value"] if width == 1 else [
        f"target_{j}" for j in range(width)]
    section = report.section(f"Predicted and true values: {split}")
    rows = []
    for j, name in enumerate(names):
        p, t = [row[j] for row in predicted], [row[j] for row in true]
        residuals = [a - b for a, b in zip(p, t)]
        n = len(t)
        rows.append([name, n, sum(abs(r) for r in residuals) / n, math.sqrt(sum(r * r for r in residuals) / n),
                     sum(residuals) / n, _pearson(p, t)])
    section.table(["target", "rows", "MAE", "RMSE", "mean residual (bias)", "Pearson r"], rows)
    for j, name in enumerate(names[:MAX_TARGETS]):
        p, t = [row[j] for row in predicted], [row[j] for row in true]
        low, high = min(min(p), min(t)), max(max(p), max(t))
        left = Panel(f"Predicted vs true: {name}", xlabel=f"true {name}", ylabel=f"predicted {name}")
        left.scatter(t, p).line([low, high], [low, high], label="predicted = true", colour=RED, width=1)
        right = Panel(f"Residuals: {name}", xlabel=f"true {name}", ylabel="residual (predicted - true)")
        right.scatter(t, [a - b for a, b in zip(p, t)], colour=PURPLE).hline(0)
        section.svg(f"regression_{name}", f"{name}: predicted against true (the diagonal is a perfect prediction), "
                    "and the residual (predicted - true) against the true value.",
                    figure([left, right], width=1100, height=460))


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var = math.sqrt(sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b))
    return cov / var if var else 0.0
