"""Entity-level precision, recall and F1 (micro, macro, per type) and token accuracy, as seqeval computes them.

An entity counts as found only when its type and its exact token span match (strict span matching, as conlleval and
seqeval's default mode). Micro averages pool the counts of all types; macro averages the per-type scores over the
types that occur in the references or the predictions; a ratio with nothing to divide is 0. Predictions are
``{"tags": [...]}`` (or a list of tags) per sentence, references a list of tags. Pure Python, no torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import EngineError, Metric
from engine_builtins.tagging.schemes import entities


def tags_of(value: Any) -> Sequence[str]:
    return value["tags"] if isinstance(value, dict) else value


@dataclass
class Counts:
    """True positives, predicted and true entities per type, and token agreement."""

    correct: Counter[str]
    predicted: Counter[str]
    true: Counter[str]
    tokens_right: int
    tokens: int

    @property
    def types(self) -> list[str]:
        return sorted(set(self.predicted) | set(self.true))


def count(predictions: list[Any], references: list[Any]) -> Counts:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    correct: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    true: Counter[str] = Counter()
    right = total = 0
    for p, r in zip(predictions, references):
        pred, ref = tags_of(p), tags_of(r)
        if len(pred) != len(ref):
            raise ValueError(f"a prediction has {len(pred)} tags for {len(ref)} reference tags")
        pred_spans, ref_spans = set(entities(pred)), set(entities(ref))
        predicted.update(e.type for e in pred_spans)
        true.update(e.type for e in ref_spans)
        correct.update(e.type for e in pred_spans & ref_spans)
        right += sum(a == b for a, b in zip(pred, ref))
        total += len(ref)
    return Counts(correct, predicted, true, right, total)


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    precision, recall = _ratio(correct, predicted), _ratio(correct, true)
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def micro(counts: Counts) -> tuple[float, float, float]:
    return prf(sum(counts.correct.values()), sum(counts.predicted.values()), sum(counts.true.values()))


def macro(counts: Counts) -> tuple[float, float, float]:
    scores = [prf(counts.correct[t], counts.predicted[t], counts.true[t]) for t in counts.types]
    if not scores:
        return 0.0, 0.0, 0.0
    return tuple(sum(s[i] for s in scores) / len(scores) for i in range(3))  # type: ignore[return-value]


def per_type(counts: Counts) -> dict[str, dict[str, float]]:
    result = {}
    for t in counts.types:
        p, r, f = prf(counts.correct[t], counts.predicted[t], counts.true[t])
        result[t] = {"precision": p, "recall": r, "f1": f, "support": float(counts.true[t])}
    return result


# --- the components ----------------------------------------------------------------------------------------------


def _require_tagging(task: Any, name: str) -> None:
    if getattr(task, "tag_names", None) is None:
        raise EngineError(f"metric {name!r} scores entities in tag sequences; this task ({type(task).__name__}) "
                          "does not tag tokens")


def entity_metric(which: str, average: str) -> Callable[[Any, Any], Metric]:
    """A factory for entity precision, recall or F1, micro- or macro-averaged."""
    index = ("precision", "recall", "f1").index(which)
    name = f"entity_{which}" + ("_macro" if average == "macro" else "")

    def factory(options: Any, task: Any) -> Metric:
        _require_tagging(task, name)

        def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
            counts = count(predictions, references)
            return {name: (micro if average == "micro" else macro)(counts)[index]}

        return compute

    factory.__doc__ = f"Entity {which}, {average}-averaged over types (strict spans, as seqeval)."
    return factory


def entity_per_type(options: Any, task: Any) -> Metric:
    """Entity scores per type, named ``entity_f1/PER`` and so on."""
    _require_tagging(task, "entity_per_type")
    wanted = list(options.values) if options is not None else ["f1"]

    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        scores = per_type(count(predictions, references))
        known = getattr(task, "entity_types", [])
        values: dict[str, float] = {}
        for t in [*known, *(t for t in scores if t not in known)]:
            for value in wanted:
                values[f"entity_{value}/{t}"] = scores.get(t, {}).get(value, 0.0)
        return values

    return compute


def token_accuracy(options: Any, task: Any) -> Metric:
    """Share of tokens whose tag is right (BIO tags, O included)."""
    _require_tagging(task, "token_accuracy")

    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        counts = count(predictions, references)
        return {"token_accuracy": _ratio(counts.tokens_right, counts.tokens)}

    return compute
