"""Sequence labeling (named-entity recognition): the ``tagging`` task, ``crf`` and ``softmax`` heads, the ``conll``
and ``txt`` data formats, and entity-level metrics.

A minimal task file::

    {"task": "tagging",
     "data": {"format": "conll", "train": "train.conll", "validation": "dev.conll", "separator": "\\t"}}

Tags may come in BIO, IOB1, BIOES or BILOU (declared with ``task.scheme`` or detected); they are scored per word at
the word's first subword, with a CRF that never predicts a transition the scheme forbids. This module only declares
the components: nothing here imports torch, so ``engine validate`` stays fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import DataOptions, hookimpl


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


def build_task(options: TaggingOptions) -> Any:
    """Tag every word of a sentence (BIO, IOB1, BIOES, BILOU); entities with types and spans."""
    from engine_builtins.tagging.tagger import TaggingTask

    return TaggingTask(options)


def build_crf(options: CrfOptions, spec: Any) -> Any:
    """A linear layer and a CRF with the tag scheme's transition constraints (not transformers-loadable)."""
    from engine_builtins.tagging.heads import CrfHead

    return CrfHead(spec, options.dropout, options.constrained)


def build_softmax(options: SoftmaxOptions, spec: Any) -> Any:
    """A linear layer and a softmax per token (loads in transformers' AutoModelForTokenClassification)."""
    from engine_builtins.heads.modules import LinearHead

    return LinearHead(spec, options.dropout, "cls")


@hookimpl
def task(register: Any) -> None:
    register("tagging", build_task, options=TaggingOptions)
    register("ner", build_task, options=TaggingOptions, description="The tagging task, by another name.")


@hookimpl
def load_data(register: Any) -> None:
    from engine_builtins.tagging.readers import load_conll, load_plain

    register("conll", load_conll, options=ConllOptions)
    register("txt", load_plain, options=PlainTextOptions)


@hookimpl
def build_head(register: Any) -> None:
    register("crf", build_crf, options=CrfOptions)
    register("softmax", build_softmax, options=SoftmaxOptions)


@hookimpl
def metric(register: Any) -> None:
    from engine_builtins.tagging import metrics

    for average in ("micro", "macro"):
        for which in ("precision", "recall", "f1"):
            name = f"entity_{which}" + ("_macro" if average == "macro" else "")
            register(name, metrics.entity_metric(which, average), higher_is_better=True, produces=[name])
    register("entity_per_type", metrics.entity_per_type, options=PerTypeOptions, higher_is_better=True,
             produces=["entity_*/*"])
    register("token_accuracy", metrics.token_accuracy, higher_is_better=True, produces=["token_accuracy"])
