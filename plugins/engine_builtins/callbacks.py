"""Callbacks: early stopping, and the JSONL history every run keeps."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import Callback, Register, TrainerState, hookimpl


class EarlyStoppingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitor: str | None = Field(
        None, description="Metric to watch, e.g. 'validation.accuracy'; default: training.monitor.")
    patience: int = Field(2, ge=1, description="Evaluations without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    mode: Literal["auto", "max", "min"] = Field(
        "auto", description="Whether the monitor improves up or down; auto: as its metric declares.")


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` evaluations."""

    def __init__(self, options: EarlyStoppingOptions) -> None:
        self.options = options
        self.best: float | None = None
        self.waited = 0

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        monitor = self.options.monitor or state.monitor
        if monitor is None or monitor not in metrics:
            from engine import EngineError

            raise EngineError(f"early_stopping: monitor {monitor!r} is not among the metrics: {', '.join(metrics)}")
        mode = self.options.mode if self.options.mode != "auto" else state.directions[monitor]
        value = metrics[monitor]
        delta = self.options.min_delta
        better = self.best is None or (value > self.best + delta if mode == "max" else value < self.best - delta)
        if better:
            self.best, self.waited = value, 0
            return
        self.waited += 1
        if self.waited >= self.options.patience:
            state.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "waited": self.waited}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.waited = state["best"], state["waited"]


class HistoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(10, ge=1, description="Log the training loss every N optimizer steps.")


class History(Callback):
    """Append training losses and evaluations to RUN_DIR/history.jsonl, one JSON object a line.

    Stateful: a checkpoint records how much of the file it covers, and a resumed run cuts what a killed run wrote
    after it, so every step appears once.
    """

    def __init__(self, options: HistoryOptions) -> None:
        self.every = options.every
        self.start = time.perf_counter()
        self.path: Path | None = None
        self.resume_at: int | None = None

    def _write(self, state: TrainerState, record: dict[str, Any]) -> None:
        if not state.is_main_process:
            return
        record = {"epoch": state.epoch + 1, "step": state.global_step,
                  "time": round(time.perf_counter() - self.start, 3), **record}
        with (state.run_dir / "history.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, state: TrainerState) -> None:
        self.path = state.run_dir / "history.jsonl"
        if self.resume_at is not None and state.is_main_process and self.path.exists():
            with self.path.open("r+b") as f:
                f.truncate(self.resume_at)

    def on_step_end(self, state: TrainerState, logs: Mapping[str, float]) -> None:
        if state.global_step % self.every == 0:  # reads the loss only then
            self._write(state, {"event": "train", **logs})

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        self._write(state, {"event": "evaluate", **metrics})

    def state_dict(self) -> dict[str, Any]:
        return {"bytes": self.path.stat().st_size if self.path is not None and self.path.exists() else 0}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resume_at = int(state.get("bytes", 0))


@hookimpl
def callback(register: Register) -> None:
    register("early_stopping", EarlyStopping, options=EarlyStoppingOptions)
    register("history", History, options=HistoryOptions)
