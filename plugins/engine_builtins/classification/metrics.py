"""Classification metrics over predictions shaped ``{"label": name or [names], ...}`` and references alike
(a name, or a list of names for multi-label). No torch: plain counting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from engine import Metric


def label_set(value: Any) -> frozenset[str]:
    value = value["label"] if isinstance(value, dict) else value
    return frozenset(value) if isinstance(value, (list, tuple, set, frozenset)) else frozenset([value])


def accuracy(options: Any, task: Any) -> Metric:
    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        right = sum(label_set(p) == label_set(r) for p, r in zip(predictions, references))
        return {"accuracy": right / len(references) if references else 0.0}

    return compute


def counts(predictions: list[Any], references: list[Any]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """True positives, false positives and false negatives per label."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for p, r in zip(predictions, references):
        pred, ref = label_set(p), label_set(r)
        tp.update(pred & ref)
        fp.update(pred - ref)
        fn.update(ref - pred)
    return tp, fp, fn


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def prf(name: str, average: str) -> Callable[[Any, Any], Metric]:
    """A factory for precision, recall or F1, micro-averaged (pooled counts) or macro-averaged (mean over labels
    seen in references or predictions), as scikit-learn computes them with zero_division=0."""
    which = ("precision", "recall", "f1").index(name)

    def factory(options: Any, task: Any) -> Metric:
        def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
            tp, fp, fn = counts(predictions, references)
            if average == "micro":
                value = precision_recall_f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))[which]
            else:
                labels = set(tp) | set(fp) | set(fn)
                scores = [precision_recall_f1(tp[label], fp[label], fn[label])[which] for label in labels]
                value = sum(scores) / len(scores) if scores else 0.0
            return {f"{name}_{average}": value}

        return compute

    factory.__doc__ = f"{name} ({average})"
    return factory
