"""The ``crf`` head: a linear layer scores every tag at every token, and a linear-chain CRF scores tag sequences.

The CRF runs over the positions that carry tags (``batch["tag_mask"]``: each word's first subword by default),
packed to the left, so its transitions are between words, not between a word and its own subwords. Transitions
that the tag scheme forbids (``O -> I-PER``) are ruled out in training and decoding (see ``crf.allowed_transitions``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from engine import EngineError
from engine.head import HeadOutput, HeadSpec
from engine_builtins.heads.modules import IGNORE
from engine_builtins.tagging.crf import CRF, PAD_TAG


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions that carry a tag: ``logits (batch, seq, tags)``,
    ``labels (batch, seq)``."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)


def pack(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move the positions where ``mask`` is on to the left, in order.

    ``values (batch, seq, ...)``, ``mask (batch, seq)`` -> packed ``(batch, n, ...)``, its mask ``(batch, n)`` and
    ``index (batch, n)``: the original position of each packed one, all distinct within a row (so a scatter back
    through it never writes one position twice).
    """
    # shape: (batch, seq); a stable sort puts masked-on positions first, in their original order
    order = torch.sort((~mask).to(torch.uint8), dim=1, stable=True).indices
    # shape: (batch,)
    lengths = mask.sum(dim=1)
    n = max(int(lengths.max()), 1)
    # shape: (batch, n)
    index = order[:, :n]
    # shape: (batch, n)
    packed_mask = torch.arange(n, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    gather_index = index.view(*index.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    # shape: (batch, n, ...)
    return values.gather(1, gather_index), packed_mask, index


class CrfHead(nn.Module):
    """Dropout, a linear layer to tag scores (emissions), and a CRF over them."""

    def __init__(self, spec: HeadSpec, dropout: float, constrained: bool) -> None:
        super().__init__()
        if spec.level != "token" or not spec.labels:
            raise EngineError("head 'crf' tags tokens: it needs a token-level task with named tags, such as 'tagging'")
        self.spec = spec
        self.dropout = nn.Dropout(dropout)
        # Named as in transformers' ...ForTokenClassification, so the emission layer reads the same way.
        self.classifier = nn.Linear(spec.hidden_size, spec.num_outputs)
        try:
            self.crf = CRF.from_tags(spec.labels) if constrained else CRF(spec.num_outputs)
        except ValueError as exc:
            raise EngineError(f"head 'crf': cannot constrain transitions between these tags: {exc}") from None

    def forward(self, output: Any, batch: dict[str, torch.Tensor]) -> HeadOutput:
        # shape: (batch, seq, tags)
        logits = self.classifier(self.dropout(output.last_hidden_state))
        # shape: (batch, seq)
        mask = batch.get("tag_mask")
        if mask is None:
            mask = batch["attention_mask"].bool()
        # shape: (batch, n, tags), (batch, n), (batch, n)
        emissions, packed_mask, index = pack(logits.float(), mask)
        loss = None
        labels = batch.get("labels")
        if labels is not None:
            # shape: (batch, n)
            tags = labels.gather(1, index).masked_fill(~packed_mask, 0)
            # Per-token mean, so the loss reads on the same scale as the softmax head's cross-entropy.
            loss = -self.crf.log_likelihood(emissions, tags, packed_mask, reduction="token_mean")
        predictions = None
        if not self.training:
            # shape: (batch, n) -> (batch, seq), PAD_TAG where no tag is decoded
            paths = self.crf.decode(emissions, packed_mask)
            predictions = torch.full(mask.shape, PAD_TAG, dtype=torch.long, device=mask.device).scatter(1, index, paths)
        weight = packed_mask.sum() if loss is not None else None
        return HeadOutput(logits=logits, loss=loss, predictions=predictions, loss_weight=weight)

    def no_weight_decay(self) -> set[str]:
        """Transition scores are log-potentials, not weights to shrink towards zero."""
        return {f"crf.{name}" for name, _ in self.crf.named_parameters()}

    def hf_export(self) -> None:
        """Transformers has no CRF head: the saved model loads with ``engine predict`` only."""
        return None
