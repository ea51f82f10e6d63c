"""Text classification: one label per text (softmax) or several (sigmoid with a threshold), over one text or a pair.

Labels are strings. They come from the training data (sorted) unless ``labels`` lists them, which also fixes their
order; they are saved with the model (``id2label`` in its config.json).
"""

from __future__ import annotations

from typing import Any

from engine import Register, hookimpl
from engine_builtins.classification.options import ClassificationOptions


def build_task(options: ClassificationOptions) -> Any:
    """Assign one label (or several) to a text or a pair of texts."""
    from engine_builtins.classification.classifier import ClassificationTask

    return ClassificationTask(options)


@hookimpl
def task(register: Register) -> None:
    register("classification", build_task, options=ClassificationOptions)


@hookimpl
def metric(register: Register) -> None:
    from engine_builtins.classification import metrics

    register("accuracy", metrics.accuracy, description="Share of rows whose label (or label set) is exactly right.",
             higher_is_better=True, produces=["accuracy"])
    for average in ("macro", "micro"):
        for name in ("precision", "recall", "f1"):
            register(f"{name}_{average}", metrics.prf(name, average), higher_is_better=True,
                     description=f"{name.capitalize()}, {average}-averaged over labels.",
                     produces=[f"{name}_{average}"])
