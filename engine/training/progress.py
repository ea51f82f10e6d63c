"""The training progress bar's view of an epoch: rows trained, and the loss.

Losses stay on the device: the host reads them (and waits for the device) once per ``LOSS_SYNC_STEPS`` steps for the
bar, or when a callback or tracker asks (``StepLogs``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

LOSS_SYNC_STEPS = 10  # optimizer steps between the progress bar's readings of the loss
LOSS_WINDOW = 50  # the progress bar's loss: the mean of the last LOSS_WINDOW steps


class EpochProgress:
    """Advances ``bar``'s task ``job`` by the rows of each batch and shows the recent steps' mean loss."""

    def __init__(self, bar: Any, job: Any) -> None:
        self.bar, self.job = bar, job
        self.batch_losses: list[torch.Tensor] = []  # this optimizer step's batches
        self.recent: deque[torch.Tensor] = deque(maxlen=LOSS_WINDOW)  # the last steps' means

    def batch(self, loss: torch.Tensor, rows: int) -> None:
        self.batch_losses.append(loss.detach())
        self.bar.advance(self.job, rows)

    def step(self, global_step: int) -> torch.Tensor:
        """The step's loss (the mean over its batches), still on the device; shown every ``LOSS_SYNC_STEPS`` steps
        and at the epoch's first step."""
        losses = self.batch_losses
        loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        self.batch_losses = []
        self.recent.append(loss)
        if global_step % LOSS_SYNC_STEPS == 0 or len(self.recent) == 1:
            self.show()
        return loss

    def show(self) -> None:
        if self.recent:
            self.bar.update(self.job, postfix=f"loss {torch.stack(list(self.recent)).float().mean().item():.4f}")
