"""Regression: one or more real-valued targets per text or pair of texts (``"task": "regression"``).

Targets come from ``data.label``: one column for one target, a list of columns for several. The head is the usual
``linear`` (or ``mlp``) one with one output per target, trained with MSE, Huber or L1 loss. Targets may be
normalized for training (fitted on the training split and saved with the model); predictions are always given on the
original scale, clamped to ``bounds`` when set. The metrics (``pearson``, ``spearman``, ``mse``, ``rmse``, ``mae``,
``r2``) give one value per target (``pearson_<target>``) when there are several, and the plain name is their mean.

A model saved with the ``linear`` head (``pooling: "pooler"``) loads in transformers'
``AutoModelForSequenceClassification`` (``problem_type: "regression"``, one label per target). Its raw outputs are on
the normalized scale; ``config.json``'s ``engine_regression`` key holds ``shift``, ``scale`` and ``bounds``, and
``value[i] = logits[:, i] * scale[i] + shift[i]``, clamped to ``bounds``, is what ``engine predict`` gives.
"""

from __future__ import annotations

from typing import Any

from engine import Register, hookimpl
from engine_builtins.regression.options import RegressionOptions


def build_task(options: RegressionOptions) -> Any:
    """Predict one or more numbers from a text or a pair of texts."""
    from engine_builtins.regression.regressor import RegressionTask

    return RegressionTask(options)


@hookimpl
def task(register: Register) -> None:
    register("regression", build_task, options=RegressionOptions)


@hookimpl
def metric(register: Register) -> None:
    from engine_builtins.regression import metrics

    for name, description in metrics.DESCRIPTIONS.items():
        # A mean over targets and, with several targets, one value per target (pearson_score...).
        register(name, metrics.factory(name), description=description, produces=[name, f"{name}_*"],
                 higher_is_better=name in metrics.HIGHER_IS_BETTER)
