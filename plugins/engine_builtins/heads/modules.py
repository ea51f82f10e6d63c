"""The modules behind the ``linear`` and ``mlp`` heads."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine.head import HeadOutput, HeadSpec

IGNORE = -100  # the label of positions without one, as in transformers' token classification


def pool(output: Any, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence from the encoder's output."""
    hidden = output.last_hidden_state  # shape: (batch, seq, hidden)
    if how == "pooler" and getattr(output, "pooler_output", None) is not None:
        return output.pooler_output
    if how == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # shape: (batch, seq, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return hidden[:, 0]


class SequenceOrTokenHead(nn.Module):
    """Shared forward: features at the spec's level, through ``project``, loss from the task."""

    def __init__(self, spec: HeadSpec, pooling: str) -> None:
        super().__init__()
        self.spec, self.pooling = spec, pooling

    @property
    def first_token_only(self) -> bool:
        """Reads the encoder's first token alone (the pooler reads it too), so its last layer computes only that."""
        return self.spec.level == "sequence" and self.pooling in ("pooler", "cls")

    def forward(self, output: Any, batch: dict[str, torch.Tensor]) -> HeadOutput:
        if self.spec.level == "token":
            features = output.last_hidden_state  # shape: (batch, seq, hidden)
        else:
            features = pool(output, batch["attention_mask"], self.pooling)  # shape: (batch, hidden)
        logits = self.project(features)
        labels = batch.get("labels")
        loss = self.spec.loss(logits, labels) if labels is not None and self.spec.loss is not None else None
        # A token-level loss is a mean over the tokens that carry a label (transformers' -100 marks the others).
        weight = (labels != IGNORE).sum() if labels is not None and loss is not None and self.spec.level == "token" \
            else None
        return HeadOutput(logits=logits, loss=loss, loss_weight=weight)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LinearHead(SequenceOrTokenHead):
    def __init__(self, spec: HeadSpec, dropout: float, pooling: str) -> None:
        super().__init__(spec, pooling)
        self.dropout = nn.Dropout(dropout)
        # Named as in transformers' BertFor...Classification, so the weights export under the same keys.
        self.classifier = nn.Linear(spec.hidden_size, spec.num_outputs)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features))

    def hf_export(self) -> tuple[str, dict[str, torch.Tensor]] | None:
        """Transformers' equivalent of this head, when there is one: its kind and weights."""
        if self.spec.level == "token":
            kind = "token_classification"
        elif self.pooling == "pooler":
            kind = "sequence_classification"
        else:
            return None
        return kind, {"classifier.weight": self.classifier.weight, "classifier.bias": self.classifier.bias}


class MlpHead(SequenceOrTokenHead):
    def __init__(self, spec: HeadSpec, dropout: float, pooling: str, hidden: int, activation: str) -> None:
        super().__init__(spec, pooling)
        act = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}[activation]()
        self.body = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(spec.hidden_size, hidden), act, nn.Dropout(dropout),
            nn.Linear(hidden, spec.num_outputs),
        )

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.body(features)
