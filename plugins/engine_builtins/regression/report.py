"""Regression's sections of the run report: predicted against true values, and the residuals, per target."""

from __future__ import annotations

import math
from typing import Any

from engine.report import Report

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
        figure = section.figure(f"regression_{name}", f"{name}: predicted against true (the diagonal is a perfect "
                                "prediction), and the residual (predicted - true) against the true value.",
                                size=(10, 4.2))
        left, right = figure.subplots(1, 2)
        low, high = min(min(p), min(t)), max(max(p), max(t))
        left.scatter(t, p, s=10, alpha=0.5, edgecolors="none")
        left.plot([low, high], [low, high], color="tab:red", lw=1, label="predicted = true")
        left.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=f"Predicted vs true: {name}")
        left.legend(loc="upper left")
        right.scatter(t, [a - b for a, b in zip(p, t)], s=10, alpha=0.5, edgecolors="none", color="tab:purple")
        right.axhline(0, color="tab:red", lw=1)
        right.set(xlabel=f"true {name}", ylabel="residual (predicted - true)", title=f"Residuals: {name}")
        for ax in (left, right):
            ax.grid(alpha=0.3)


def _pearson(a: list[float], b: list[float]) -> float:
    n = len(a)
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var = math.sqrt(sum((x - mean_a) ** 2 for x in a) * sum((y - mean_b) ** 2 for y in b))
    return cov / var if var else 0.0
