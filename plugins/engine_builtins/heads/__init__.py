"""Heads for any task: ``linear`` (the transformers-compatible one) and ``mlp``.

At the sequence level they read a pooled vector; at the token level, every token's hidden state.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import Register, hookimpl


class LinearOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout before the output layer.")
    pooling: Literal["pooler", "cls", "mean"] = Field(
        "pooler",
        description="Sequence level: the encoder's pooler (as transformers' ...ForSequenceClassification, so the "
        "saved model loads there), the first token's state, or the mean over tokens.",
    )


class MlpOptions(LinearOptions):
    hidden_size: int | None = Field(None, ge=1, description="Width of the hidden layer; default: the encoder's.")
    activation: Literal["gelu", "relu", "tanh"] = Field("gelu", description="Activation of the hidden layer.")
    pooling: Literal["pooler", "cls", "mean"] = Field(
        "mean", description="Sequence level: the encoder's pooler, the first token's state, or the mean over tokens.")


def build_linear(options: LinearOptions, spec: Any) -> Any:
    """Dropout and one linear layer; saved models load in transformers' AutoModelFor... classes."""
    from engine_builtins.heads.modules import LinearHead

    return LinearHead(spec, options.dropout, options.pooling)


def build_mlp(options: MlpOptions, spec: Any) -> Any:
    """A hidden layer with an activation, then a linear layer."""
    from engine_builtins.heads.modules import MlpHead

    return MlpHead(spec, options.dropout, options.pooling, options.hidden_size or spec.hidden_size, options.activation)


@hookimpl
def build_head(register: Register) -> None:
    register("linear", build_linear, options=LinearOptions)
    register("mlp", build_mlp, options=MlpOptions)
