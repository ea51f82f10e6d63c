"""Which encoder parameters train: none frozen, the embeddings, the first N layers, the whole encoder, or a
gradual unfreezing from the top, one more layer each epoch."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine import Register, hookimpl
from engine_builtins.optimizers import layer_of


class LayersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=1, description="How many of the lowest encoder layers to freeze (the embeddings too).")


class GradualOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(1, ge=0, description="Encoder layers trainable in the first epoch, counted from the top.")
    step: int = Field(1, ge=1, description="Layers unfrozen at each later epoch.")


def _layers(model: Any) -> int:
    return int(getattr(model.backbone.config, "num_hidden_layers", 0) or 0)


class Freeze:
    """Freeze backbone parameters whose layer index (0 = embeddings) is below a bound that may depend on the epoch."""

    def __init__(self, bound: Any) -> None:
        self.bound = bound

    def apply(self, model: Any, epoch: int) -> None:
        total = _layers(model)
        limit = self.bound(total, epoch)
        for name, param in model.backbone.named_parameters():
            param.requires_grad = layer_of(name, total) >= limit


def build_none(options: None) -> Freeze:
    """Everything trains."""
    return Freeze(lambda total, epoch: 0)


def build_embeddings(options: None) -> Freeze:
    """The embeddings stay as pretrained."""
    return Freeze(lambda total, epoch: 1)


def build_layers(options: LayersOptions) -> Freeze:
    """The embeddings and the first n encoder layers stay as pretrained."""
    return Freeze(lambda total, epoch: min(options.n, total) + 1)


def build_backbone(options: None) -> Freeze:
    """Only the head trains."""
    return Freeze(lambda total, epoch: total + 2)


def build_gradual(options: GradualOptions) -> Freeze:
    """Gradual unfreezing from the top (ULMFiT): more layers train each epoch."""
    return Freeze(lambda total, epoch: max(0, total + 1 - options.start - options.step * epoch))


@hookimpl
def freeze(register: Register) -> None:
    register("none", build_none)
    register("embeddings", build_embeddings)
    register("layers", build_layers, options=LayersOptions)
    register("backbone", build_backbone)
    register("gradual", build_gradual, options=GradualOptions)
