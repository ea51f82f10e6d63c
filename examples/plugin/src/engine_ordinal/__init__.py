"""engine-ordinal: a third-party engine plugin, complete, as its own installable package.

It adds

- the task ``ordinal``: labels with an order (``1``..``5`` stars, ``low < medium < high``), learned as K-1 cumulative
  binary decisions "is the rank above k?" (the CORAL / cumulative-link decomposition of Cao, Mirjalili & Raschka
  2020), so a prediction one level off costs less than one four levels off;
- the head ``attention_pooling``: a learned, masked softmax over the tokens pools the sequence (it serves any
  sequence-level task, ``classification`` included);
- the metrics ``qwk`` (quadratic weighted kappa) and ``rank_mae`` (mean absolute error in ranks), for any task whose
  labels have an order: ``ordinal``, or ``classification`` (its labels in their sorted order);
- the callback ``stop_at_target``: stop training once a metric reaches a value.

The engine finds it through the ``engine.plugins`` entry point in pyproject.toml. This module only declares
components: it imports no torch, so ``engine validate`` and ``engine plugins`` stay fast; the modules that do the
work are imported when a component is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import Register, hookimpl

__version__ = "0.1.0"
# The engine versions this plugin supports (written against 0.2; 0.3 may only deprecate what it uses).
ENGINE_VERSIONS = ">=0.2,<0.4"


class OrdinalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    levels: list[str] | None = Field(
        None, min_length=2,
        description="The labels from lowest to highest; default: the training labels, which must then be numbers.",
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="A rank is above level k when P(rank > k) exceeds this.")


class AttentionPoolingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the pooled vector.")
    attention_size: int | None = Field(None, ge=1, description="Width of the attention scorer; default: the encoder's.")


class StopAtTargetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitor: str | None = Field(None, description="Metric to watch, e.g. 'validation.qwk'; default: training.monitor.")
    target: float = Field(description="Stop once the metric reaches this value.")
    mode: Literal["auto", "max", "min"] = Field(
        "auto", description="Whether higher is better; auto: as training.monitor, or lower for losses and errors."
    )


def build_task(options: OrdinalOptions) -> Any:
    """Labels with an order, learned as cumulative 'above level k' decisions."""
    from engine_ordinal.ranks import OrdinalTask

    return OrdinalTask(options)


def build_attention_pooling(options: AttentionPoolingOptions, spec: Any) -> Any:
    """A learned attention over the tokens pools the sequence; then a linear layer."""
    from engine_ordinal.attention import AttentionPoolingHead

    return AttentionPoolingHead(spec, options.dropout, options.attention_size)


def build_stop_at_target(options: StopAtTargetOptions) -> Any:
    """Stop training once a metric reaches a target value."""
    from engine_ordinal.callbacks import StopAtTarget

    return StopAtTarget(options)


@hookimpl
def task(register: Register) -> None:
    register("ordinal", build_task, options=OrdinalOptions)


@hookimpl
def build_head(register: Register) -> None:
    register("attention_pooling", build_attention_pooling, options=AttentionPoolingOptions)


@hookimpl
def metric(register: Register) -> None:
    from engine_ordinal import metrics

    register("qwk", metrics.quadratic_kappa, higher_is_better=True, produces=["qwk"])
    register("rank_mae", metrics.rank_mae, higher_is_better=False, produces=["rank_mae"])


@hookimpl
def callback(register: Register) -> None:
    register("stop_at_target", build_stop_at_target, options=StopAtTargetOptions)
