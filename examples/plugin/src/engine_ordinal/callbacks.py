"""The ``stop_at_target`` callback: stop training once a metric reaches a value (enough is enough)."""

from __future__ import annotations

from typing import Any

from engine import Callback, EngineError, TrainerState


class StopAtTarget(Callback):
    """Stop once the monitored metric reaches ``target``; remembers when, across ``--resume``."""

    def __init__(self, options: Any) -> None:
        self.options = options
        self.reached_at: int | None = None

    def on_evaluate(self, state: TrainerState, metrics: dict[str, float]) -> None:
        monitor = self.options.monitor or state.monitor
        if monitor is None or monitor not in metrics:
            raise EngineError(f"stop_at_target: monitor {monitor!r} is not among the metrics: {', '.join(metrics)}")
        mode = self.options.mode
        if mode == "auto":
            # As the engine reads metric names: losses and errors improve downwards.
            lower = any(word in monitor for word in ("loss", "mae", "mse", "error"))
            mode = state.mode if monitor == state.monitor else ("min" if lower else "max")
        value = metrics[monitor]
        if (value >= self.options.target) if mode == "max" else (value <= self.options.target):
            self.reached_at = state.global_step
            state.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"reached_at": self.reached_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reached_at = state.get("reached_at")
