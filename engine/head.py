"""What a task asks of a head, and what a head gives back. Light: no torch import at run time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch


@dataclass
class HeadSpec:
    """What a task asks of its head."""

    hidden_size: int
    num_outputs: int
    level: Literal["sequence", "token"]
    #: ``loss(logits, labels) -> scalar``; heads with a loss of their own (a CRF) may ignore it.
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    #: Output names (labels, tags, targets), for heads that need them (a CRF's transition constraints).
    labels: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadOutput:
    """What a head returns: logits, a loss when the batch has labels, and decoded predictions when it decodes."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    predictions: torch.Tensor | None = None
    #: How many items ``loss`` is the mean of, when that is not the batch's sequences (a token-level loss: its
    #: tokens). Evaluation pools losses by it, and several processes weight their gradients by it, so both equal
    #: what one process computes over the whole data.
    loss_weight: torch.Tensor | None = None
