"""The run's checkpoints: when one is due, writing one, and resuming from the latest (the files themselves:
``engine.rundir.checkpoints``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine import console
from engine.callbacks import CallbackList, TrainerState
from engine.config.sections import TrainingConfig
from engine.rundir.checkpoints import latest_checkpoint, read_trainer_state, save_checkpoint

# What a checkpoint brings back into the state (the rest comes from the task file).
RESUMED_FIELDS = ("epoch", "epoch_batches", "global_step", "best_metric", "best_step", "best_epoch", "best_metrics",
                  "should_stop", "samples", "train_seconds")


class Checkpoints:
    """Checkpoints every ``save_steps`` steps or ``save_minutes`` minutes, counted from when this object is made (the
    end of setup) or the last save."""

    def __init__(self, accelerator: Any, run_dir: Path, training: TrainingConfig, state: TrainerState,
                 callbacks: CallbackList) -> None:
        self.accelerator, self.run_dir, self.training = accelerator, run_dir, training
        self.state, self.callbacks = state, callbacks
        self.last_save = time.monotonic()

    def due(self) -> bool:
        """Every ``save_steps`` steps, or ``save_minutes`` after the last save (the main process's clock decides)."""
        from accelerate.utils import broadcast_object_list

        training = self.training
        if training.save_steps and self.state.global_step % training.save_steps == 0:
            return True
        if not training.save_minutes:
            return False
        due = [time.monotonic() - self.last_save >= training.save_minutes * 60]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(due)
        return bool(due[0])

    def save(self) -> None:
        state = {"state": self.state.to_json(), "callbacks": self.callbacks.state_dict(),
                 "processes": self.accelerator.num_processes, "batch_size": self.training.batch_size}
        save_checkpoint(self.accelerator, self.run_dir, self.state.global_step, state, self.training.save_total_limit)
        self.last_save = time.monotonic()


def restore(accelerator: Any, run_dir: Path, state: TrainerState, callbacks: CallbackList) -> None:
    """Load the latest checkpoint into the prepared model, optimizer and scheduler, the RNGs, ``state`` and the
    callbacks."""
    path = latest_checkpoint(run_dir)
    assert path is not None  # claim_output_dir made sure, and that the processes and batch size match
    saved = read_trainer_state(path)
    accelerator.load_state(str(path))  # model, optimizer, scheduler, RNGs, accumulation counter
    for key in RESUMED_FIELDS:
        setattr(state, key, saved["state"][key])
    callbacks.load_state_dict(saved["callbacks"])
    where = f"epoch {state.epoch + 1}, step {state.global_step}"
    if state.epoch_batches:
        where += f" (batch {state.epoch_batches + 1} of the epoch)"
    console.info(f"Resuming {run_dir} at {where} from {path.name}")
