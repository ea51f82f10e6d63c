"""The options of the classification components (the task file's sections), apart from the components: the task's
modules import them without importing the package's declarations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClassificationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    multi_label: bool = Field(False, description="Each text may carry several labels (or none).")
    threshold: float = Field(0.5, gt=0, lt=1, description="Multi-label: a label is predicted above this probability.")
    labels: list[str] | None = Field(
        None, min_length=2, description="The label names, in order; default: those in the training data.")
    label_separator: str = Field(",", min_length=1, description="Multi-label: separates labels inside one field.")
