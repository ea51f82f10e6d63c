"""Tagging's sections of the run report: per-entity-type scores and the most frequent entity errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine import Report
from engine.report.charts import Panel, figure
from engine_builtins.tagging.metrics import count, per_type, tags_of
from engine_builtins.tagging.schemes import entities

MISSED, SPURIOUS = "O (missed)", "O (not an entity)"
TOP_ERRORS = 15


def entity_errors(predictions: list[Any], references: list[Any]) -> Counter[tuple[str, str, str]]:
    """(true, predicted, kind) of every entity error, kind one of: type (same span, other type), boundary (an
    overlapping span; the true type, and the predicted span's), missed (nothing predicted over it), spurious (a
    predicted span over no true entity). Each entity is counted once; exact matches are not errors."""
    errors: Counter[tuple[str, str, str]] = Counter()
    for p, r in zip(predictions, references):
        predicted, true = set(entities(tags_of(p))), set(entities(tags_of(r)))
        matched = predicted & true
        spans = {(e.start, e.end): e for e in predicted}
        for entity in true - matched:
            same = spans.get((entity.start, entity.end))
            overlapping = [e for e in predicted if e.start < entity.end and entity.start < e.end]
            if same is not None:
                errors[(entity.type, same.type, "type")] += 1
            elif overlapping:
                errors[(entity.type, overlapping[0].type, "boundary")] += 1
            else:
                errors[(entity.type, MISSED, "missed")] += 1
        for entity in predicted - matched:
            if not any(e.start < entity.end and entity.start < e.end for e in true):
                errors[(SPURIOUS, entity.type, "spurious")] += 1
    return errors


def tagging_report(report: Report, split: str, predictions: list[Any], references: list[Any]) -> None:
    counts = count(predictions, references)
    scores = per_type(counts)
    section = report.section(f"Entity scores by type: {split}")
    section.text("Strict span matching, as conlleval and seqeval score: an entity counts when its type and its exact "
                 "words match.")
    section.table(["type", "precision", "recall", "F1", "true entities", "predicted entities"],
                  [[t, s["precision"], s["recall"], s["f1"], counts.true[t], counts.predicted[t]]
                   for t, s in scores.items()])
    if scores:
        types = list(scores)
        panel = Panel(f"Entity scores by type: {split.split(' (')[0]}", xlabel="score",
                      ylabel="entity type (true entities)", xlim=(0, 1))
        panel.barh([f"{t} ({counts.true[t]})" for t in types],
                   [(key, [scores[t][key] for t in types]) for key in ("f1", "precision", "recall")])
        section.svg("entity_f1", "F1, precision and recall of each entity type.",
                    figure([panel], width=880, height=round(110 + 40 * len(types)), legend_outside=True))

    errors = entity_errors(predictions, references)
    section = report.section(f"Most frequent entity errors: {split}")
    if not errors:
        section.text("No entity errors.")
        return
    section.text("type: right words, wrong type; boundary: overlapping words, the predicted span's type; missed: no "
                 "entity predicted there; spurious: an entity predicted where there is none.")
    section.table(["true", "predicted", "kind", "count", "share of errors"],
                  [[t, p, kind, n, n / sum(errors.values())] for (t, p, kind), n in errors.most_common(TOP_ERRORS)])
