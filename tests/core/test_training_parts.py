"""The training loop's small parts, without a model: the clock leaves evaluations and checkpoints out of the
training time and estimates the rest once; the progress bar's loss is each step's mean, read only now and then;
checkpoints fall due every save_steps steps."""

from pathlib import Path
from types import SimpleNamespace

import torch

from engine import console
from engine.callbacks import CallbackList, TrainerState
from engine.training import clock as clock_module
from engine.training.checkpointing import Checkpoints
from engine.training.clock import Clock
from engine.training.progress import LOSS_SYNC_STEPS, EpochProgress


def state(**fields) -> TrainerState:
    return TrainerState(run_dir=Path("run"), epochs=1, steps_per_epoch=100, max_steps=100, **fields)


def test_the_clock_counts_training_alone(monkeypatch):
    now = [10.0]
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: now[0])
    trained = state(train_seconds=5.0)  # a resumed run's earlier training
    clock = Clock(trained)
    clock.start()
    now[0] += 2
    with clock.stopped():  # an evaluation
        now[0] += 30
    now[0] += 1
    clock.stop()
    assert trained.train_seconds == 5.0 + 2 + 1


def test_the_estimate_is_printed_once_after_ten_steps(monkeypatch):
    now, said = [0.0], []
    monkeypatch.setattr(clock_module.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(console, "info", said.append)
    trained = state(global_step=20)
    clock = Clock(trained)
    clock.start()
    for _ in range(12):
        now[0] += 0.5
        trained.global_step += 1
        clock.estimate()
    assert len(said) == 1
    # 10 steps in 5 s after the 20 already taken (a resume): 70 steps left at 0.5 s each
    assert "Estimated training time left: 35 s (0.50 s a step over the first 10)" in said[0]


class Bar:
    def __init__(self) -> None:
        self.rows, self.shown = 0, []

    def advance(self, job, rows) -> None:
        self.rows += rows

    def update(self, job, postfix) -> None:
        self.shown.append(postfix)


def test_a_steps_loss_is_the_mean_of_its_batches_shown_at_the_first_step_and_every_few():
    bar = Bar()
    progress = EpochProgress(bar, job=0)
    losses = []
    for step in range(1, 2 * LOSS_SYNC_STEPS + 1):
        progress.batch(torch.tensor(float(step)), rows=3)
        progress.batch(torch.tensor(float(step) + 1), rows=2)
        losses.append(progress.step(step))
    assert bar.rows == 2 * LOSS_SYNC_STEPS * 5
    assert [float(loss) for loss in losses] == [step + 0.5 for step in range(1, 2 * LOSS_SYNC_STEPS + 1)]
    assert len(bar.shown) == 3  # the first step, then every LOSS_SYNC_STEPS steps
    assert bar.shown[-1] == f"loss {sum(step + 0.5 for step in range(1, 2 * LOSS_SYNC_STEPS + 1)) / 20:.4f}"


def test_a_checkpoint_is_due_every_save_steps_steps():
    training = SimpleNamespace(save_steps=3, save_minutes=None)
    trained = state()
    checkpoints = Checkpoints(SimpleNamespace(num_processes=1), Path("run"), training, trained, CallbackList([]))
    due = []
    for step in range(1, 10):
        trained.global_step = step
        due.append(checkpoints.due())
    assert [step for step, is_due in zip(range(1, 10), due) if is_due] == [3, 6, 9]
