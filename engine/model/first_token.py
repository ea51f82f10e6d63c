"""The encoder's last layer computed at the first token only, for heads that read nothing else.

A sequence head that pools with the first token (``[CLS]``, or transformers' pooler, which reads it) throws away the
last layer's output at every other position. In a BERT-style layer only the keys and values need every position;
the query, the attention output, the feed-forward block and their layer norms are needed at the first token alone.
Computing just that removes about 10/12 of the last layer's work, in the forward and the backward pass (a sixth of a
6-layer encoder, minus its keys and values), and changes nothing the head sees: the first token's output is the same
function of the same inputs. tests/core/test_first_token.py checks outputs and gradients against the full layer.

It applies to transformers' BERT-family layers (BERT, RoBERTa, ELECTRA, XLM-R, ... : ``attention.self.query`` and
friends) under the ``sdpa`` or ``eager`` attention; any other encoder runs unchanged. It is per thread: threads
sharing one model (`engine serve`'s streams) each get the forward they asked for.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def first_token_layer(backbone: nn.Module) -> tuple[nn.Module, Callable[..., Any]] | None:
    """The backbone's last layer and the attention function it uses, when the first-token forward applies to it."""
    config = getattr(backbone, "config", None)
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if config is None or not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return None
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None  # relative positions are computed inside the attention, from all query positions
    layer = layers[-1]
    if getattr(layer, "gradient_checkpointing", False) or getattr(backbone.encoder, "gradient_checkpointing", False):
        return None  # the backward pass would recompute the layer outside the block, with its whole forward
    attention = getattr(layer, "attention", None)
    self_attention = getattr(attention, "self", None)
    if self_attention is None or not all(
            isinstance(getattr(self_attention, name, None), nn.Module) for name in ("query", "key", "value")):
        return None
    if not all(hasattr(self_attention, name) for name in ("scaling", "attention_head_size", "dropout")):
        return None  # transformers 4's layout: its own forward
    if not all(isinstance(module, nn.Module) for module in (
            getattr(attention, "output", None), getattr(layer, "intermediate", None), getattr(layer, "output", None))):
        return None
    implementation = getattr(config, "_attn_implementation", None)
    if implementation == "eager":
        attend = getattr(sys.modules.get(type(self_attention).__module__), "eager_attention_forward", None)
    elif implementation == "sdpa":
        try:
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        except ImportError:
            return None
        attend = ALL_ATTENTION_FUNCTIONS.get("sdpa")
    else:
        return None  # flash attention's padding handling assumes a decoder's last query
    return (layer, attend) if callable(attend) else None


def first_token_forward(layer: Any, attend: Callable[..., Any], hidden_states: torch.Tensor,
                        attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> torch.Tensor:
    """A BERT-style layer's output at the first token only: shape (batch, 1, hidden). Takes the layer's own
    arguments; those past the mask (cross-attention inputs, a cache: an encoder has none) are not used."""
    attention = layer.attention.self
    batch, length = hidden_states.shape[:2]
    first = hidden_states[:, :1]
    size = attention.attention_head_size
    query = attention.query(first).view(batch, 1, -1, size).transpose(1, 2)
    key = attention.key(hidden_states).view(batch, length, -1, size).transpose(1, 2)
    value = attention.value(hidden_states).view(batch, length, -1, size).transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] > 1:
        attention_mask = attention_mask[:, :, :1]  # the first query's row
    context, _ = attend(attention, query, key, value, attention_mask,
                        dropout=attention.dropout.p if attention.training else 0.0, scaling=attention.scaling)
    context = context.reshape(batch, 1, -1).contiguous()
    attended = layer.attention.output(context, first)
    return layer.output(layer.intermediate(attended), attended)


#: Guards the installed forwards' counts (threads entering and leaving the block on one layer).
_lock = threading.Lock()
#: Per thread: the layers (by id) this thread is inside the block of.
_inside = threading.local()


class _FirstTokenSwitch:
    """A layer's forward while a thread is inside the block: the first-token forward for the threads inside, the
    layer's own for the others. Installed by the first thread in, removed by the last one out."""

    def __init__(self, layer: nn.Module, attend: Callable[..., Any]) -> None:
        self.layer, self.attend, self.users = layer, attend, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if id(self.layer) in getattr(_inside, "layers", ()):
            return first_token_forward(self.layer, self.attend, *args, **kwargs)
        return type(self.layer).forward(self.layer, *args, **kwargs)


@contextmanager
def only_first_token(backbone: nn.Module) -> Iterator[bool]:
    """Within the block, the backbone's last layer computes the first token only, in this thread (yields whether
    it does)."""
    found = first_token_layer(backbone)
    if found is None:
        yield False
        return
    layer, attend = found
    # An instance attribute, removed on the way out of the last thread: the module itself is unchanged.
    with _lock:
        switch = vars(layer).get("forward")
        if not isinstance(switch, _FirstTokenSwitch):
            switch = layer.forward = _FirstTokenSwitch(layer, attend)
        switch.users += 1
    inside = _inside.__dict__.setdefault("layers", set())
    nested = id(layer) in inside
    inside.add(id(layer))
    try:
        yield True
    finally:
        if not nested:
            inside.discard(id(layer))
        with _lock:
            switch.users -= 1
            if switch.users == 0:
                del layer.forward
