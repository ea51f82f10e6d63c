"""Classification's sections of the run report: per-label precision, recall and F1, and a confusion matrix."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.report import Report
from engine_builtins.classification.metrics import _labels, counts, precision_recall_f1

MAX_MATRIX_LABELS = 30  # beyond this many labels the matrix shows the most frequent ones


def classification_report(report: Report, split: str, predictions: list[Any], references: list[Any],
                          labels: list[str]) -> None:
    predicted, true = [_labels(p) for p in predictions], [_labels(r) for r in references]
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
    import numpy as np

    n = len(labels)
    matrix = matrix_of(labels, pairs)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(3.0 + 0.45 * n, 14.0)
    caption = ("Rows: the true label; columns: the predicted label; colour: the share of the row (recall on the "
               "diagonal).")
    if n < total_labels:
        caption += f" The {n} most frequent of {total_labels} labels."
    figure = section.figure("confusion_matrix", caption, size=(side + 1.2, side))
    ax = figure.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="share of the true label's rows", shrink=0.8)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted label", ylabel="true label", title=f"Confusion matrix: {split.split(' (')[0]}")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")


def matrix_of(labels: list[str], pairs: Counter[tuple[str, str]]) -> Any:
    """Counts of (true, predicted) label pairs as a matrix: row i the true ``labels[i]``, column j the predicted."""
    import numpy as np

    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for (true, predicted), count in pairs.items():
        if true in index and predicted in index:
            matrix[index[true], index[predicted]] += count
    return matrix
