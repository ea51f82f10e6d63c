"""Classification's sections of the run report: per-label precision, recall and F1, and a confusion matrix."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from engine import Report
from engine.report.charts import heatmap
from engine_builtins.classification.metrics import counts, label_set, precision_recall_f1

MAX_MATRIX_LABELS = 30  # beyond this many labels the matrix shows the most frequent ones


def classification_report(report: Report, split: str, predictions: list[Any], references: list[Any],
                          labels: list[str]) -> None:
    predicted, true = [label_set(p) for p in predictions], [label_set(r) for r in references]
    seen = set().union(*predicted, *true) if predicted else set()
    order = [name for name in labels if name in seen] + sorted(seen - set(labels))
    tp, fp, fn = counts(predictions, references)
    section = report.section(f"Per-label scores: {split}")
    rows = []
    for name in order:
        precision, recall, f1 = precision_recall_f1(tp[name], fp[name], fn[name])
        rows.append([name, precision, recall, f1, tp[name] + fn[name], tp[name] + fp[name]])
    section.table(["label", "precision", "recall", "F1", "true rows", "predicted rows"], rows)

    if any(len(p) != 1 for p in predicted) or any(len(r) != 1 for r in true):
        section.text("Multi-label: no confusion matrix (a row may have several labels or none).")
        return
    pairs = Counter((next(iter(r)), next(iter(p))) for p, r in zip(predicted, true))
    shown = order
    if len(order) > MAX_MATRIX_LABELS:
        frequent = Counter(next(iter(r)) for r in true).most_common(MAX_MATRIX_LABELS)
        shown = [name for name in order if name in dict(frequent)]
    confusion_matrix(report.section(f"Confusion matrix: {split}"), split, shown, pairs, len(order))


def confusion_matrix(section: Any, split: str, labels: list[str], pairs: Counter[tuple[str, str]],
                     total_labels: int) -> None:
    matrix = matrix_of(labels, pairs)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    caption = ("Rows: the true label; columns: the predicted label; colour: the share of the row (recall on the "
               "diagonal).")
    if len(labels) < total_labels:
        caption += f" The {len(labels)} most frequent of {total_labels} labels."
    section.svg("confusion_matrix", caption, heatmap(
        share.tolist(), labels, counts=matrix.tolist(), title=f"Confusion matrix: {split.split(' (')[0]}",
        xlabel="predicted label", ylabel="true label", scale_label="share of the true label's rows"))


def matrix_of(labels: list[str], pairs: Counter[tuple[str, str]]) -> Any:
    """Counts of (true, predicted) label pairs as a matrix: row i the true ``labels[i]``, column j the predicted."""
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for (true, predicted), count in pairs.items():
        if true in index and predicted in index:
            matrix[index[true], index[predicted]] += count
    return matrix
