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

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine import hookimpl


class RegressionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loss: Literal["mse", "huber", "l1"] = Field("mse", description="Training loss, on the (normalized) targets.")
    huber_delta: float = Field(
        1.0, gt=0, description="Huber loss: where it turns from squared to linear, on the normalized scale."
    )
    normalize: Literal["none", "standardize", "minmax"] = Field(
        "standardize",
        description="Train on standardized (zero mean, unit variance) or min-max scaled targets, or as they are; "
        "fitted on the training split and saved with the model; predictions are mapped back to the original scale.",
    )
    bounds: tuple[float, float] | None = Field(
        None, description="[low, high]: predictions are clamped to this range, and targets outside it are an error."
    )
    targets: list[str] | None = Field(
        None, min_length=1,
        description="Names of the targets, in the order of data.label's columns (for metric names and predictions); "
        "default: 'value' for one target; for several, the names of data.label's columns.",
    )

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError("expected [low, high] with low < high")
        return value

    @field_validator("targets")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("target names must differ")
        return value


def build_task(options: RegressionOptions) -> Any:
    """Predict one or more numbers from a text or a pair of texts."""
    from engine_builtins.regression.regressor import RegressionTask

    return RegressionTask(options)


@hookimpl
def task(register: Any) -> None:
    register("regression", build_task, options=RegressionOptions)


@hookimpl
def metric(register: Any) -> None:
    from engine_builtins.regression import metrics

    for name, description in metrics.DESCRIPTIONS.items():
        # A mean over targets and, with several targets, one value per target (pearson_score...).
        register(name, metrics.factory(name), description=description, produces=[name, f"{name}_*"],
                 higher_is_better=name in metrics.HIGHER_IS_BETTER)
