"""The ``attention_pooling`` head: additive attention (Bahdanau et al. 2015) pools the tokens into one vector.

Padding never receives weight: the attention mask sets its scores to the lowest float before the softmax.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from engine import EngineError
from engine.head import HeadOutput, HeadSpec


class AttentionPoolingHead(nn.Module):
    """``forward(backbone_output, batch) -> HeadOutput`` for any sequence-level task."""

    def __init__(self, spec: HeadSpec, dropout: float, attention_size: int | None) -> None:
        super().__init__()
        if spec.level != "sequence":
            # Pooling turns a sequence into one vector; a token-level task needs one output per token.
            raise EngineError(f"head 'attention_pooling' pools a sequence into one vector; this task needs "
                              f"{spec.level}-level outputs (use 'linear' or 'mlp')")
        self.spec = spec
        width = attention_size or spec.hidden_size
        self.score = nn.Sequential(nn.Linear(spec.hidden_size, width), nn.Tanh(), nn.Linear(width, 1))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(spec.hidden_size, spec.num_outputs)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled vectors (batch, hidden) and the attention weights (batch, seq)."""
        scores = self.score(hidden).squeeze(-1)  # shape: (batch, seq)
        scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)  # shape: (batch, seq)
        pooled = torch.einsum("bs,bsh->bh", weights, hidden)  # shape: (batch, hidden)
        return pooled, weights

    def forward(self, output: Any, batch: dict[str, torch.Tensor]) -> HeadOutput:
        pooled, _ = self.pool(output.last_hidden_state, batch["attention_mask"])
        logits = self.output(self.dropout(pooled))  # shape: (batch, num_outputs)
        labels = batch.get("labels")
        loss = self.spec.loss(logits, labels) if labels is not None and self.spec.loss is not None else None
        return HeadOutput(logits=logits, loss=loss)
