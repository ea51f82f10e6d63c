"""The training clock: ``TrainerState.train_seconds`` counts training alone (evaluations and checkpoints inside an
epoch are left out), and early in training one estimate of the time left is printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from engine import console
from engine.callbacks import TrainerState

ESTIMATE_STEPS = 10  # steps timed before the estimate...
ESTIMATE_SECONDS = 20  # ...or fewer steps, once they have taken this long


class Clock:
    """Adds the time the clock runs to ``state.train_seconds``; made when training is about to begin (after a
    resume has restored the state), which is where the estimate starts timing."""

    def __init__(self, state: TrainerState) -> None:
        self.state = state
        self.started = time.perf_counter()  # when the clock last started running
        self.first_step, self.first_seconds = state.global_step, state.train_seconds
        self.estimated = False

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.state.train_seconds += time.perf_counter() - self.started

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Evaluation and checkpointing inside an epoch do not count as training time."""
        self.stop()
        yield
        self.start()

    def estimate(self) -> None:
        """Once, after this process's first ``ESTIMATE_STEPS`` steps (or ``ESTIMATE_SECONDS``): how long the rest of
        training will take."""
        if self.estimated:
            return
        state = self.state
        steps = state.global_step - self.first_step
        seconds = state.train_seconds + time.perf_counter() - self.started - self.first_seconds
        if steps >= ESTIMATE_STEPS or (steps and seconds >= ESTIMATE_SECONDS):
            self.estimated = True
            left = (state.max_steps - state.global_step) * seconds / steps
            console.info(f"Estimated training time left: {console.duration(left)} ({seconds / steps:.2f} s a step "
                         f"over the first {steps}), evaluations aside")
