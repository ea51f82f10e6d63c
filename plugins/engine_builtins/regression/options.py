"""The options of the regression components (the task file's sections), apart from the components: the task's
modules import them without importing the package's declarations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
