"""The training loop over a set-up run (``engine.training.recipe`` builds it): epochs of Accelerate steps, evaluations
and checkpoints between them, then the best model scored and saved."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine import console
from engine.callbacks import CallbackList, StepLogs, TrainerState
from engine.config.sections import TrainingConfig
from engine.errors import EngineError
from engine.head import HeadOutput
from engine.model.encoder import EngineModel
from engine.training.batching import Batches
from engine.training.checkpointing import Checkpoints
from engine.training.clock import Clock
from engine.training.evaluation import Evaluator
from engine.training.progress import EpochProgress
from engine.training.writer import RunWriter, completed


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, float]]
    hf_loadable: bool
    report: Path | None = None
    #: The task's baseline (``Task.baseline``) on the validation and test splits, by split, and what it predicts.
    baseline: dict[str, dict[str, float | None]] = field(default_factory=dict)
    baseline_name: str = ""
    #: Published scores on the benchmark the task file names (``data.benchmark``) beside the run's own: one entry
    #: per task that names one (``Evaluator.published``).
    published: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains, evaluates and saves what setup built. ``model`` is Accelerate's (under DDP, wrapped), ``unwrapped``
    the module inside it; ``freezer`` is the freezing strategy (with an adapter's rule)."""

    def __init__(self, training: TrainingConfig, accelerator: Any, state: TrainerState, callbacks: CallbackList, *,
                 model: torch.nn.Module, unwrapped: EngineModel, optimizer: Any, scheduler: Any, batches: Batches,
                 freezer: Any, evaluator: Evaluator, writer: RunWriter) -> None:
        self.training, self.accelerator, self.state, self.callbacks = training, accelerator, state, callbacks
        self.model, self.unwrapped, self.optimizer, self.scheduler = model, unwrapped, optimizer, scheduler
        self.batches, self.freezer, self.evaluator, self.writer = batches, freezer, evaluator, writer
        self.checkpoints = Checkpoints(accelerator, writer.run_dir, training, state, callbacks)
        self.clock = Clock(state)
        self.step_weights: list[float] = []  # the loss weights of the step's batches so far (multi-task runs)

    # --- training ----------------------------------------------------------------------------------------------

    def train(self) -> None:
        state, batches = self.state, self.batches
        self.callbacks.fire("on_train_begin", state)
        self.model.train()
        with console.progress() as bar:
            # Counted in rows (a row of several features counts once). A run that ends inside an epoch (max_steps)
            # or in a stream of unknown rows starts from an estimate, made exact when training ends.
            total = batches.rows(state.max_steps * self.training.gradient_accumulation_steps)
            job = bar.add_task("train", total=total, completed=state.samples, unit="rows", postfix="")
            while state.epoch < state.epochs and not self.finished():
                what = f"pass {state.epoch + 1}" if batches.streaming else f"epoch {state.epoch + 1}/{state.epochs}"
                bar.update(job, description=what)
                self.train_epoch(EpochProgress(bar, job))
            if state.global_step >= state.max_steps:
                bar.update(job, total=state.samples)
        self.callbacks.fire("on_train_end", state)

    def train_epoch(self, progress: EpochProgress) -> None:
        """One epoch, or the rest of one after a resume; it ends with an evaluation and a checkpoint."""
        state, sampler, epoch_size = self.state, self.batches.sampler, self.batches.epoch_size
        self.begin_epoch()
        evaluated, complete = False, True
        self.clock.start()
        for batch in self.batches.loader:
            loss = self.train_batch(batch)
            rows = sampler.rows_in(state.epoch_batches)
            state.epoch_batches, state.samples = state.epoch_batches + 1, state.samples + rows
            progress.batch(loss, rows)
            if not self.accelerator.sync_gradients:  # a step's batches accumulate
                continue
            evaluated = self.end_step(progress)
            if self.finished():
                complete = epoch_size is not None and state.epoch_batches >= epoch_size
                break
            if (epoch_size is None or state.epoch_batches < epoch_size) and self.checkpoints.due():
                with self.clock.stopped():
                    self.checkpoints.save()
        self.clock.stop()
        progress.show()
        self.end_epoch(evaluated, complete)

    def begin_epoch(self) -> None:
        state = self.state
        self.batches.sampler.start_epoch(state.epoch, skip=state.epoch_batches)
        self.freezer.apply(self.unwrapped, state.epoch)
        if state.epoch_batches == 0:
            self.callbacks.fire("on_epoch_begin", state)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Forward and backward, and at a step's last batch the optimizer's step; returns the batch's loss."""
        accelerator, model, optimizer = self.accelerator, self.model, self.optimizer
        self.step_weights.append(self.loss_weight(batch))
        with accelerator.accumulate(model):
            out = model(**batch)
            accelerator.backward(self.shared_loss(out))
            if accelerator.sync_gradients:
                if self.training.max_grad_norm:
                    # A multi-task run's loss weight scales its task's gradients, and a step holds one task's batch:
                    # clipped to a fixed norm, a weighted gradient over the norm would lose its weight (on MiniLM,
                    # every step: bench/multitask.py's weighted run equalled the unweighted one to every digit). The
                    # norm scales with the step's weight, so the weight multiplies the clipped gradient:
                    # clip(w g, w c) = w clip(g, c).
                    scale = sum(self.step_weights) / len(self.step_weights)
                    accelerator.clip_grad_norm_(model.parameters(), self.training.max_grad_norm * scale)
                self.step_weights.clear()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return out.loss

    def end_step(self, progress: EpochProgress) -> bool:
        """After an optimizer step: the scheduler, the step's logs, and an evaluation if one is due (returns whether
        one ran)."""
        state, accelerator = self.state, self.accelerator
        if not accelerator.optimizer_step_was_skipped:
            self.scheduler.step()
        state.global_step += 1
        logs = StepLogs(progress.step(state.global_step), self.scheduler.get_last_lr()[0])
        self.callbacks.fire("on_step_end", state, logs)
        if self.training.report_to:  # every step: a tracker's curve wants them all
            accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=state.global_step)
        self.clock.estimate()
        if not self.evaluates_now():
            return False
        with self.clock.stopped():
            self.evaluate()
        return True

    def end_epoch(self, evaluated: bool, complete: bool) -> None:
        """The epoch's evaluation (unless its last step just ran one) and checkpoint; ``complete``: the epoch ran to
        its end, so the next one starts."""
        state = self.state
        if not evaluated:
            self.evaluate()
        self.callbacks.fire("on_epoch_end", state)
        if complete:
            state.epoch, state.epoch_batches = state.epoch + 1, 0
        self.checkpoints.save()
        if state.should_stop:
            where = (f"in epoch {state.epoch + 1}, at step" if state.epoch_batches
                     else f"after epoch {state.epoch}, step")
            console.info(f"Stopping early {where} {state.global_step}")

    def loss_weight(self, batch: dict[str, Any]) -> float:
        """The loss weight of ``batch``'s task (a multi-task run's ``weight``); 1 for a one-task run."""
        weights = getattr(self.unwrapped, "weights", None)
        return float(weights.get(str(batch["task"]), 1.0)) if weights and "task" in batch else 1.0

    def shared_loss(self, out: HeadOutput) -> torch.Tensor:
        """The loss to differentiate: under DDP, which averages the processes' gradients with equal weights, a loss
        that averages over a count of its own (tokens) is rescaled so the result is the mean over all processes'."""
        n, loss = self.accelerator.num_processes, out.loss
        if loss is None:
            raise EngineError(f"the head ({type(self.unwrapped.head).__name__}) returned no loss for a batch with "
                              "labels; a head's forward must set HeadOutput.loss when the batch has 'labels'")
        if n == 1 or out.loss_weight is None:
            return loss
        weight = out.loss_weight.detach().to(torch.float64)
        total = self.accelerator.reduce(weight, reduction="sum")
        return loss * (weight * n / total.clamp(min=1)).to(loss.dtype)

    def finished(self) -> bool:
        return self.state.should_stop or self.state.global_step >= self.state.max_steps

    def evaluates_now(self) -> bool:
        steps = self.training.eval_steps
        return steps is not None and steps > 0 and self.state.global_step % steps == 0

    def evaluate(self) -> None:
        """Score the validation split (keeping the best weights); tell the callbacks, trackers and console."""
        state = self.state
        values = self.evaluator.validate(state)
        if values is None:
            return
        self.callbacks.fire("on_evaluate", state, values)
        if self.training.report_to:
            self.accelerator.log({k.replace(".", "/", 1): v for k, v in values.items()}, step=state.global_step)
        summary = ", ".join(f"{k.split('.', 1)[1]} {v:.4f}" for k, v in values.items())
        console.info(f"epoch {state.epoch + 1} step {state.global_step}: validation {summary}")

    def dry_step(self) -> float:
        """One training batch forward and backward, nothing stepped or saved; returns its seconds."""
        self.batches.sampler.start_epoch(0)
        self.freezer.apply(self.unwrapped, 0)
        self.model.train()
        batch = next(iter(self.batches.loader))
        started = time.perf_counter()
        out = self.model(**batch)
        self.accelerator.backward(self.shared_loss(out))
        seconds = time.perf_counter() - started
        self.optimizer.zero_grad(set_to_none=True)
        estimate = seconds * self.state.max_steps * self.training.gradient_accumulation_steps
        console.info(f"Dry run: one batch forward and backward in {seconds:.2f} s (the first, with its warm-up), "
                     f"so training takes about {console.duration(estimate)} or less, evaluations aside. Nothing "
                     "was trained or written.")
        return seconds

    # --- saving ------------------------------------------------------------------------------------------------

    def save(self) -> RunResult:
        """The best model (by the monitor) is the one scored on test and saved."""
        state, accelerator, writer = self.state, self.accelerator, self.writer
        accelerator.wait_for_everyone()
        self.evaluator.load_best(state)
        results = self.evaluator.final_scores(state)
        baseline, baseline_name = self.evaluator.baselines(), self.evaluator.baseline_name()
        published = self.evaluator.published(results)
        hf_loadable = writer.model(self.unwrapped)
        writer.metrics(results)
        extra: dict[str, Any] = {"baseline": {"predicts": baseline_name, **baseline}} if baseline else {}
        extra |= {"published": published} if published else {}
        writer.manifest("completed", {**completed(state, accelerator.num_processes, hf_loadable), **extra})
        report = writer.report() if self.training.report else None
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return RunResult(writer.run_dir, results, hf_loadable, report, baseline, baseline_name, published)
