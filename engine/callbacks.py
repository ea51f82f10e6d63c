"""Training events, and what a callback may see and change."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EVENTS = ("on_train_begin", "on_epoch_begin", "on_step_end", "on_evaluate", "on_epoch_end", "on_train_end")


@dataclass
class TrainerState:
    """Where training stands: what callbacks read (and ``should_stop``, which they may set).

    Saved with every checkpoint, so ``--resume`` continues from it. Counts are the same on every process.
    ``epoch`` is 0-based, like the freezing hook's ``epoch``; what is written for people (``best_epoch``, the logs,
    history.jsonl's ``epoch``) is 1-based.
    """

    #: The run directory (``output_dir``): model/, checkpoints/, history.jsonl, metrics.json, manifest.json.
    run_dir: Path
    #: Epochs the run takes; with ``training.max_steps``, as many as those steps reach into (a stream: the passes).
    epochs: int
    #: Optimizer steps in one epoch; every process takes every step (0 for a stream, whose length is unknown).
    steps_per_epoch: int
    #: Optimizer steps the whole run takes at most (``training.max_steps``, else ``epochs * steps_per_epoch``).
    max_steps: int = 0
    #: True on the process that writes files and prints; callbacks that write should check it.
    is_main_process: bool = True
    #: The epoch in progress, 0-based; between epochs (``on_epoch_end`` has run), the next one.
    epoch: int = 0
    #: Batches of the epoch in progress already trained on (one process's batches; with gradient accumulation,
    #: several per step).
    epoch_batches: int = 0
    #: Optimizer steps taken so far.
    global_step: int = 0
    #: Training rows seen, over all processes (a row read as several features counts once).
    samples: int = 0
    #: Seconds spent training; evaluations and checkpoints excluded.
    train_seconds: float = 0.0
    #: What picks the best model, ``split.metric`` (``validation.accuracy``), or None when nothing is evaluated.
    monitor: str | None = None
    #: ``"max"`` or ``"min"``: the direction in which ``monitor`` improves.
    mode: str = "max"
    #: The best value of ``monitor`` so far, and the step and (1-based) epoch where it was reached.
    best_metric: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None
    #: Every metric of the evaluation that reached ``best_metric`` (keys as in ``on_evaluate``).
    best_metrics: dict[str, Any] = field(default_factory=dict)
    #: Set it to True (from any event) to stop after the current step: the run evaluates, then saves its best model.
    should_stop: bool = False
    #: Which way each monitored value improves, "max" or "min" (``training.monitor`` and callbacks' monitors), as
    #: the metrics declared it (``register(..., higher_is_better=...)``) or the task file set it.
    directions: dict[str, str] = field(default_factory=dict)

    def improved(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        return value > self.best_metric if self.mode == "max" else value < self.best_metric

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        return data


class StepLogs(Mapping[str, float]):
    """``on_step_end``'s ``logs``: a read-only mapping of floats, ``loss`` and ``lr``.

    The loss stays a tensor on the device until a callback reads it: reading it makes the host wait for the step
    to finish (on a GPU, a synchronization), so a step whose logs nobody reads runs without one.
    """

    def __init__(self, loss: Any, lr: float) -> None:
        self._loss, self._values = loss, {"lr": lr}

    def __getitem__(self, key: str) -> float:
        if key == "loss" and "loss" not in self._values:
            self._values["loss"] = float(self._loss)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("loss", "lr"))

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"StepLogs({dict(self)})"


class Callback:
    """Base of training callbacks: every event does nothing until overridden."""

    def on_train_begin(self, state: TrainerState) -> None:
        """Once, before the first epoch (also after ``--resume``)."""

    def on_epoch_begin(self, state: TrainerState) -> None:
        """At the start of every epoch."""

    def on_step_end(self, state: TrainerState, logs: Mapping[str, float]) -> None:
        """After every optimizer step; ``logs`` has ``loss`` (the mean over the step's batches) and ``lr``. Read
        the loss only when you need it (every N steps, say): reading it waits for the step to finish."""

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        """After every evaluation; ``metrics`` are keyed ``split.name`` (``validation.accuracy``)."""

    def on_epoch_end(self, state: TrainerState) -> None:
        """At the end of every epoch, after its evaluation."""

    def on_train_end(self, state: TrainerState) -> None:
        """Once, after the last epoch or an early stop."""

    def state_dict(self) -> dict[str, Any]:
        """What to save with a checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class CallbackList:
    """Fires each event on every callback, in order; missing methods are skipped (duck-typed callbacks work).

    Checkpointed states are keyed by the callbacks' names, so a resume with callbacks added or removed gives each
    its own state back.
    """

    def __init__(self, callbacks: list[Any], names: list[str] | None = None) -> None:
        self.callbacks = callbacks
        names = names or [type(c).__name__ for c in callbacks]
        seen: dict[str, int] = {}
        self.keys = []
        for name in names:
            seen[name] = seen.get(name, 0) + 1
            self.keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")

    def fire(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method is not None:
                method(*args)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {key: getattr(c, "state_dict", dict)() for key, c in zip(self.keys, self.callbacks)}

    def load_state_dict(self, states: dict[str, dict[str, Any]]) -> None:
        for key, callback in zip(self.keys, self.callbacks):
            if key in states and hasattr(callback, "load_state_dict"):
                callback.load_state_dict(states[key])
