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

from typing import Any

from engine import Register, hookimpl
from engine_builtins.tagging.options import (
    ConllOptions,
    CrfOptions,
    PerTypeOptions,
    PlainTextOptions,
    SoftmaxOptions,
    TaggingOptions,
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
def task(register: Register) -> None:
    register("tagging", build_task, options=TaggingOptions)
    register("ner", build_task, options=TaggingOptions, description="The tagging task, by another name.")


@hookimpl
def load_data(register: Register) -> None:
    from engine_builtins.tagging.readers import load_conll, load_plain

    register("conll", load_conll, options=ConllOptions)
    register("txt", load_plain, options=PlainTextOptions)


@hookimpl
def build_head(register: Register) -> None:
    register("crf", build_crf, options=CrfOptions)
    register("softmax", build_softmax, options=SoftmaxOptions)


@hookimpl
def metric(register: Register) -> None:
    from engine_builtins.tagging import metrics

    for average in ("micro", "macro"):
        for which in ("precision", "recall", "f1"):
            name = f"entity_{which}" + ("_macro" if average == "macro" else "")
            register(name, metrics.entity_metric(which, average), higher_is_better=True, produces=[name])
    register("entity_per_type", metrics.entity_per_type, options=PerTypeOptions, higher_is_better=True,
             produces=["entity_*/*"])
    register("token_accuracy", metrics.token_accuracy, higher_is_better=True, produces=["token_accuracy"])
