"""The options of the tagging components (the task file's sections), apart from the components: the task's
modules import them without importing the package's declarations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import DataOptions


class TaggingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheme: Literal["auto", "bio", "iob1", "bioes", "bilou"] = Field(
        "auto", description="Tag scheme of the data; 'auto' detects it in each file. Tags are used as BIO inside."
    )
    types: list[str] | None = Field(
        None, min_length=1, description="Entity types (PER, LOC...), in order; default: those in the training data."
    )
    label_subwords: Literal["first", "last", "all"] = Field(
        "first", description="Which subwords of a word carry its tag in training: the first (others ignored), the "
        "last, or all (later ones continue the entity). Predictions are per word either way.",
    )
    stride: int = Field(
        32, ge=0, description="Subword tokens shared by consecutive windows when a sentence is longer than "
        "model.max_length (at most half a window).",
    )


class ConllOptions(DataOptions):
    token_column: int = Field(0, description="Column of the token (0-based; negative counts from the end).")
    tag_column: int = Field(-1, description="Column of the tag (0-based; negative counts from the end).")
    separator: str | None = Field(
        None, min_length=1,
        description="Column separator; default: runs of spaces and tabs. With \"\\t\", tokens may contain spaces.",
    )
    text: str = Field("tokens", description="Key of the tokens when `engine predict`/`evaluate` read a JSONL file.")
    label: str = Field("tags", description="Key of the tags when `engine predict`/`evaluate` read a JSONL file.")


class PlainTextOptions(DataOptions):
    pass


class CrfOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the emission layer.")
    constrained: bool = Field(True, description="Forbid the transitions the tag scheme does not allow (O -> I-PER).")


class SoftmaxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the output layer.")


class PerTypeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: list[Literal["precision", "recall", "f1", "support"]] = Field(
        ["f1"], min_length=1, description="Which scores to give per entity type."
    )
