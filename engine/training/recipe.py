"""The run: data, model, the Accelerate loop, evaluation, saving. Reads top to bottom."""

from __future__ import annotations

import math
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader

from engine import console
from engine.atomic import atomic_path, replace_dir, write_json
from engine.callbacks import CallbackList, StepLogs, TrainerState
from engine.config.choice import ResolvedTask
from engine.data.features import (
    augment,
    encode_split,
    feature_key,
    lengths,
    row_starts,
)
from engine.data.node import first_on_node
from engine.data.split import DataOptions, Split, hold_out
from engine.errors import ConfigError, ConfigIssue, EngineError, RunDirError
from engine.head import HeadOutput
from engine.inference.loop import infer
from engine.inference.scores import Scores, compute_metrics, write_predictions
from engine.model.adapters import ADAPTER_DIR, Adapter, FreezeWithAdapter, adapter_meta, write_adapter_dir
from engine.model.encoder import EngineModel, default_max_length, load_pretrained
from engine.model.saved import save_model
from engine.plugins.manager import PluginManager
from engine.rundir.checkpoints import (
    checkpoint_dir,
    clean_partial,
    latest_checkpoint,
    read_trainer_state,
    save_checkpoint,
)
from engine.rundir.layout import check_output_dir, claim_output_dir, prepare_output_dir
from engine.rundir.lock import RunLock
from engine.rundir.manifest import manifest
from engine.training.batching import LengthGroupedBatches, StreamBatches, collate
from engine.training.precision import resolve_precision, training_device
from engine.training.trackers import flat_config, trackers

T = TypeVar("T")


LOSS_SYNC_STEPS = 10  # optimizer steps between the progress bar's readings of the loss
LOSS_WINDOW = 50  # the progress bar's loss: the mean of the last LOSS_WINDOW steps
STREAM_PASSES = 1000  # passes over a stream whose freezing schedule decides what enters DDP and the optimizer


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, float]]
    hf_loadable: bool
    report: Path | None = None


def load_splits(resolved: ResolvedTask) -> dict[str, Split]:
    splits = resolved.data.build(resolved.base_dir)
    if "train" not in splits:
        raise ConfigError([ConfigIssue("data.train", "missing: a training file is needed to train")], resolved.source)
    for split in splits.values():
        if not split.streaming and not len(split):
            raise EngineError(f"{split.source}: the {split.name} split is empty")
    return splits


def monitor_and_mode(resolved: ResolvedTask, task: Any, splits: dict[str, Split]) -> tuple[str | None, str]:
    """The metric that picks the best model (None without its split) and whether it improves up or down (decided
    when the task file was validated: see ``engine.config.monitor_direction``)."""
    monitor = resolved.monitor
    if monitor.split(".")[0] not in splits:
        if resolved.training.monitor:
            raise ConfigError([ConfigIssue("training.monitor", f"monitors {monitor!r} but data has no "
                                           f"{monitor.split('.')[0]!r} split")], resolved.source)
        return None, "max"
    return monitor, resolved.directions[monitor]


class Run:
    """One training run, in the shape of a torchtune recipe: ``setup``, ``train``, ``save``."""

    def __init__(self, resolved: ResolvedTask, manager: PluginManager, *, overwrite: bool, resume: bool,
                 dry_run: bool = False, callbacks: Sequence[Any] = ()) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.resolved, self.manager, self.overwrite, self.resume = resolved, manager, overwrite, resume
        self.extra_callbacks = list(callbacks)  # the caller's own (engine tune's pruning), after the task file's
        self.dry_run = dry_run  # build everything, run one batch forward and backward, write nothing
        self.training = resolved.training
        # Under DDP, parameters that take no part in a step's loss (an encoder's pooler that the head does not
        # read, layers frozen for this epoch) would stop the gradient reduction; letting DDP look for them costs
        # a graph walk per step (measured in bench/ddp_unused_parameters.py) and makes every head and freezing
        # schedule safe. Frozen parameters are left out of DDP altogether (see ``trainable_at_any_epoch``).
        ddp = DistributedDataParallelKwargs(find_unused_parameters=self.training.find_unused_parameters)
        self.run_dir = resolved.output_dir
        precision = resolve_precision(self.training.mixed_precision, training_device(), resolved.source)
        self.accelerator = Accelerator(gradient_accumulation_steps=self.training.gradient_accumulation_steps,
                                       mixed_precision=precision, kwargs_handlers=[ddp],
                                       log_with=trackers(self.training.report_to, self.run_dir) or None,
                                       project_dir=self.run_dir if self.training.report_to else None)
        self.main = self.accelerator.is_main_process
        self.task = resolved.task_object
        self.lock: RunLock | None = None  # the main process's hold on the run directory (take_lock)
        self.writing = False  # the run directory is being written (after setup has loaded data and model)

    # --- setup -------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        from accelerate.data_loader import prepare_data_loader
        from accelerate.utils import set_seed

        resolved, training, accelerator = self.resolved, self.training, self.accelerator
        console.set_quiet(not self.main)
        if training.threads:
            torch.set_num_threads(training.threads)
        if self.dry_run:  # writes nothing, so needs no lock; the run it previews may still be refused: say so now
            try:
                check_output_dir(self.run_dir, **self.output_checks)
            except RunDirError as exc:
                console.warn(f"engine run without --dry-run would stop: {exc}")
        else:
            self.take_lock()
        set_seed(training.seed)

        # Data: read, learn the label space from train, check the other splits against it, augment train. The
        # first process of each node reads (and tokenizes, below) into the data cache; the others map its files.
        self.splits = first_on_node(accelerator, lambda: load_splits(resolved))
        train = self.splits["train"]
        # A stream is fitted on its first rows; what they miss (a label seen later) fails as it is read, with its line.
        fit_rows = getattr(resolved.data.options, "fit_rows", DataOptions.model_fields["fit_rows"].default)
        self.task.fit(train.head(fit_rows) if train.streaming else train)
        fraction = getattr(resolved.data.options, "validation_split", None)
        if fraction:  # after fit: a label seen only in the held-out rows is still one the task knows
            self.splits["train"], self.splits["validation"] = hold_out(train, fraction, training.seed)
        for name, split in self.splits.items():
            if name != "train":
                self.task.check(split)
        if resolved.augment:
            self.splits["train"] = first_on_node(accelerator, lambda: augment(
                self.splits["train"], [a.build() for a in resolved.augment], [a.raw for a in resolved.augment],
                training.seed))

        # Model: the pretrained encoder, the task's features, the head it asks for.
        console.info(f"Loading [bold]{resolved.model.name}[/]")
        backbone: Any
        self.tokenizer, backbone = load_pretrained(resolved.model.name, resolved.model.revision)
        self.max_length = default_max_length(self.tokenizer, backbone, resolved.model.max_length)
        version = getattr(self.manager.infos.get(resolved.task.component.plugin), "version", None)
        key = feature_key(resolved.task.raw, version)
        self.features = first_on_node(accelerator, lambda: {
            name: encode_split(self.task, split, self.tokenizer, self.max_length, key=key,
                               num_proc=getattr(resolved.data.options, "num_proc", None))
            for name, split in self.splits.items()})
        set_seed(training.seed)
        self.head_spec = self.task.head_spec(backbone.config.hidden_size)
        head = resolved.head.build(self.head_spec)
        # An adapter goes into the encoder in place (its forward unchanged); its rule joins the freezing strategy's.
        self.adapter = Adapter(resolved.adapter, backbone) if resolved.adapter else None
        model = EngineModel(backbone, head, list(self.tokenizer.model_input_names))
        self.freezer = resolved.freeze.build()
        if self.adapter is not None:
            self.freezer = FreezeWithAdapter(self.freezer, self.adapter)
        self.metrics = [choice.build(self.task) for choice in resolved.metrics]
        self.callbacks = CallbackList([*(c.build() for c in resolved.callbacks), *self.extra_callbacks],
                                      [*(c.name for c in resolved.callbacks),
                                       *(type(c).__name__ for c in self.extra_callbacks)])
        monitor, mode = monitor_and_mode(resolved, self.task, self.splits)

        # Batches: global batches of batch_size per process, each process reading its share (see the sampler).
        # A generator of its own: each new iterator over a DataLoader draws a seed from the global RNG otherwise,
        # and a resumed run, which starts its iterator at another moment, would then draw other dropout masks.
        shards = {"num_processes": accelerator.num_processes, "rank": accelerator.process_index}
        pad = partial(collate, self.task, self.tokenizer)
        self.streaming = self.splits["train"].streaming
        self.sampler: LengthGroupedBatches | StreamBatches
        self.epoch_size: int | None = None  # batches in an epoch (None: a stream's length is unknown)
        if self.streaming:
            self.sampler = StreamBatches(self.features["train"], training.batch_size, training.seed,
                                         training.group_by_length, **shards)
            loader = DataLoader(self.sampler, batch_size=None, generator=torch.Generator(),
                                collate_fn=pad)
        else:
            self.sampler = LengthGroupedBatches(lengths(self.features["train"]), training.batch_size, training.seed,
                                                training.group_by_length, starts=row_starts(self.features["train"]),
                                                **shards)
            loader = DataLoader(self.features["train"], batch_sampler=self.sampler, generator=torch.Generator(),
                                collate_fn=pad)
        # The sampler already shards; Accelerate only places batches and tells `accumulate` where an epoch ends.
        # (Not dispatched: a dispatcher would read the stream on the main process only, and drop our generator.)
        self.loader = prepare_data_loader(loader, accelerator.device, num_processes=1, process_index=0,
                                          put_on_device=True, dispatch_batches=False)
        if self.streaming:  # a stream's length is unknown: passes over it until max_steps (required by config)
            assert training.max_steps is not None
            steps_per_epoch, epochs, total_steps = 0, training.max_steps, training.max_steps
        else:
            assert isinstance(self.sampler, LengthGroupedBatches)
            self.epoch_size = len(self.sampler)
            steps_per_epoch = math.ceil(self.epoch_size / training.gradient_accumulation_steps)
            epochs = math.ceil(training.max_steps / steps_per_epoch) if training.max_steps else training.epochs
            total_steps = training.max_steps or steps_per_epoch * epochs

        # Optimisation. Freezing comes before DDP wraps the model: what never trains stays out of it.
        # (A stream's passes are bounded only by max_steps: its schedule is read for the first STREAM_PASSES.)
        trainable_at_any_epoch(self.freezer, model, min(epochs, STREAM_PASSES) if self.streaming else epochs)
        optimizer = resolved.optimizer.build(model)
        # The scheduler is ours to step, once per optimizer step: Accelerate's wrapper would step it once per
        # process, which suits loaders it shards itself, not ours.
        self.scheduler = resolved.scheduler.build(optimizer, total_steps)
        accelerator.register_for_checkpointing(self.scheduler)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.state = TrainerState(run_dir=self.run_dir, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                  max_steps=total_steps, is_main_process=self.main, monitor=monitor, mode=mode,
                                  directions=dict(resolved.directions))
        self.print_plan(model)
        if self.dry_run:
            return

        # Only now, with data and model loaded without error, does an earlier run make way.
        self.writing = True
        if self.main:
            prepare_output_dir(self.run_dir, overwrite=self.overwrite, resume=self.resume)
            clean_partial(self.run_dir)
        accelerator.wait_for_everyone()
        if self.resume:
            self.restore()
        elif self.main:
            write_json(self.run_dir / "task.json", resolved.to_dict())
        self.write_manifest("running")
        if self.training.report_to:
            self.accelerator.init_trackers(self.run_dir.name, config=flat_config(resolved.to_dict()))
        self.last_save = time.monotonic()

    def print_plan(self, model: torch.nn.Module) -> None:
        """What the run will do, before it does it: the model's size, the data, the steps, the device."""
        training, state, n = self.training, self.state, self.accelerator.num_processes
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        data = ", ".join(f"{name} {'streamed' if split.streaming else f'{len(split):,} rows'}"
                         for name, split in self.splits.items())
        if self.streaming:
            steps = f"{state.max_steps:,} steps over the stream"
        else:
            steps = f"{state.max_steps:,} steps ({state.steps_per_epoch:,} per epoch, {state.epochs} epoch(s))"
        batch = f"batch {training.batch_size} x {n} process(es)"
        if training.gradient_accumulation_steps > 1:
            batch += f" x {training.gradient_accumulation_steps} accumulated"
        precision = {"no": "fp32"}.get(str(self.accelerator.mixed_precision), str(self.accelerator.mixed_precision))
        self.parameters = {"total": total, "trainable": trainable}
        adapter = ""
        if self.adapter is not None:
            described = self.adapter.describe()
            targets = described["target_modules"]
            adapter = (f"\n  adapter   {described['method']}"
                       + (f" r {self.adapter.options.r}" if described["method"] != "ia3" else "")
                       + f" on {', '.join(targets) if isinstance(targets, list) else targets}: "
                       f"{_count(described['parameters'])} weights; the pretrained ones stay frozen")
        console.info(
            "Plan\n"
            f"  model     {self.resolved.model.name}: {_count(total)} parameters, {_count(trainable)} trainable "
            f"({trainable / max(total, 1):.1%}); head {self.resolved.head.name}{adapter}\n"
            f"  data      {data}\n"
            f"  training  {steps}, {batch}\n"
            f"  device    {self.accelerator.device.type}, {precision}, {torch.get_num_threads()} thread(s)"
            + (" per process" if n > 1 else ""))

    def dry_step(self) -> float:
        """One training batch forward and backward, nothing stepped or saved; returns its seconds."""
        self.sampler.start_epoch(0)
        self.freezer.apply(self.unwrapped, 0)
        self.model.train()
        batch = next(iter(self.loader))
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

    def take_lock(self) -> None:
        """The main process locks the run directory; every process stops if it could not."""
        from accelerate.utils import broadcast_object_list

        refusal: list[str | None] = [None]
        if self.main:
            try:
                self.lock = claim_output_dir(self.run_dir, **self.output_checks)
            except EngineError as exc:
                refusal[0] = str(exc)
        if self.accelerator.num_processes > 1:
            broadcast_object_list(refusal)
        if refusal[0] is not None:
            raise RunDirError(refusal[0])

    @property
    def output_checks(self) -> dict[str, Any]:
        """What ``check_output_dir`` needs to know of this run."""
        return {"overwrite": self.overwrite, "resume": self.resume, "processes": self.accelerator.num_processes,
                "batch_size": self.training.batch_size}

    def restore(self) -> None:
        path = latest_checkpoint(self.run_dir)
        assert path is not None  # claim_output_dir made sure, and that the processes and batch size match
        saved = read_trainer_state(path)
        self.accelerator.load_state(str(path))  # model, optimizer, scheduler, RNGs, accumulation counter
        for key in RESUMED_FIELDS:
            setattr(self.state, key, saved["state"][key])
        self.callbacks.load_state_dict(saved["callbacks"])
        where = f"epoch {self.state.epoch + 1}, step {self.state.global_step}"
        if self.state.epoch_batches:
            where += f" (batch {self.state.epoch_batches + 1} of the epoch)"
        console.info(f"Resuming {self.run_dir} at {where} from {path.name}")

    # --- training ----------------------------------------------------------------------------------------------

    def train(self) -> None:
        state, callbacks = self.state, self.callbacks
        self.first_step, self.first_seconds, self.estimated = state.global_step, state.train_seconds, False
        callbacks.fire("on_train_begin", state)
        self.model.train()
        with console.progress() as bar:
            # Counted in rows (a row of several features counts once). A run that ends inside an epoch (max_steps)
            # or in a stream of unknown rows starts from an estimate, made exact when training ends.
            batches = state.max_steps * self.training.gradient_accumulation_steps
            if self.streaming:
                total = batches * self.global_batch
            else:
                assert isinstance(self.sampler, LengthGroupedBatches) and self.epoch_size
                total = round(int(self.sampler.starts.sum()) * batches / self.epoch_size)
            job = bar.add_task("train", total=total, completed=state.samples, unit="rows", postfix="")
            while state.epoch < state.epochs and not self.finished():
                what = f"pass {state.epoch + 1}" if self.streaming else f"epoch {state.epoch + 1}/{state.epochs}"
                bar.update(job, description=what)
                self.train_epoch(bar, job)
            if state.global_step >= state.max_steps:
                bar.update(job, total=state.samples)
        callbacks.fire("on_train_end", state)

    def train_epoch(self, bar: Any, job: Any) -> None:
        """One epoch, or the rest of one after a resume; it ends with an evaluation and a checkpoint."""
        training, accelerator, state, callbacks = self.training, self.accelerator, self.state, self.callbacks
        model, optimizer, scheduler = self.model, self.optimizer, self.scheduler
        self.sampler.start_epoch(state.epoch, skip=state.epoch_batches)
        self.freezer.apply(self.unwrapped, state.epoch)
        if state.epoch_batches == 0:
            callbacks.fire("on_epoch_begin", state)
        # Losses stay on the device: the host reads them (and waits for the device) once per LOSS_SYNC_STEPS steps
        # for the progress bar, or when a callback or tracker asks (StepLogs).
        step_losses: list[torch.Tensor] = []  # this optimizer step's batches
        recent: deque[torch.Tensor] = deque(maxlen=LOSS_WINDOW)  # the last steps' means, for the progress bar

        def show_loss() -> None:
            bar.update(job, postfix=f"loss {torch.stack(list(recent)).float().mean().item():.4f}")

        self.tick = time.perf_counter()
        evaluated, complete = False, True
        for batch in self.loader:
            with accelerator.accumulate(model):
                out = model(**batch)
                accelerator.backward(self.shared_loss(out))
                if accelerator.sync_gradients and training.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), training.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            rows = self.sampler.rows_in(state.epoch_batches)
            state.epoch_batches += 1
            step_losses.append(out.loss.detach())
            state.samples += rows
            bar.advance(job, rows)
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            state.global_step += 1
            evaluated = False
            loss = step_losses[0] if len(step_losses) == 1 else torch.stack(step_losses).mean()
            step_losses = []
            recent.append(loss)
            if state.global_step % LOSS_SYNC_STEPS == 0 or len(recent) == 1:  # and at an epoch's first step
                show_loss()
            logs = StepLogs(loss, scheduler.get_last_lr()[0])
            callbacks.fire("on_step_end", state, logs)
            if self.training.report_to:  # every step: a tracker's curve wants them all
                accelerator.log({f"train/{k}": v for k, v in logs.items()}, step=state.global_step)
            if not self.estimated:
                self.estimate_time()
            if self.evaluates_now():
                with self.clock_stopped():
                    self.evaluate_and_select()
                evaluated = True
            if self.finished():
                complete = self.epoch_size is not None and state.epoch_batches >= self.epoch_size
                break
            if (self.epoch_size is None or state.epoch_batches < self.epoch_size) and self.checkpoint_due():
                with self.clock_stopped():
                    self.save_checkpoint()
        state.train_seconds += time.perf_counter() - self.tick
        if recent:
            show_loss()
        if not evaluated:  # an epoch ends with an evaluation, unless a step's just ran
            self.evaluate_and_select()
        callbacks.fire("on_epoch_end", state)
        if complete:
            state.epoch, state.epoch_batches = state.epoch + 1, 0
        self.save_checkpoint()
        if state.should_stop:
            where = (f"in epoch {state.epoch + 1}, at step" if state.epoch_batches
                     else f"after epoch {state.epoch}, step")
            console.info(f"Stopping early {where} {state.global_step}")

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

    def estimate_time(self) -> None:
        """Once, after this process's first 10 steps (or 20 seconds): how long the rest of training will take."""
        state = self.state
        steps = state.global_step - self.first_step
        seconds = state.train_seconds + time.perf_counter() - self.tick - self.first_seconds
        if steps >= 10 or (steps and seconds >= 20):
            self.estimated = True
            left = (state.max_steps - state.global_step) * seconds / steps
            console.info(f"Estimated training time left: {console.duration(left)} ({seconds / steps:.2f} s a step "
                         f"over the first {steps}), evaluations aside")

    def finished(self) -> bool:
        return self.state.should_stop or self.state.global_step >= self.state.max_steps

    @property
    def global_batch(self) -> int:
        return self.training.batch_size * self.accelerator.num_processes

    @contextmanager
    def clock_stopped(self) -> Iterator[None]:
        """Evaluation and checkpointing inside an epoch do not count as training time."""
        self.state.train_seconds += time.perf_counter() - self.tick
        yield
        self.tick = time.perf_counter()

    def evaluates_now(self) -> bool:
        steps = self.training.eval_steps
        return steps is not None and steps > 0 and self.state.global_step % steps == 0

    def checkpoint_due(self) -> bool:
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

    def save_checkpoint(self) -> None:
        state = {"state": self.state.to_json(), "callbacks": self.callbacks.state_dict(),
                 "processes": self.accelerator.num_processes, "batch_size": self.training.batch_size}
        save_checkpoint(self.accelerator, self.run_dir, self.state.global_step, state, self.training.save_total_limit)
        self.last_save = time.monotonic()

    def evaluate(self, split: str) -> Scores:
        batch_size = self.training.eval_batch_size or self.training.batch_size * 2
        outputs, loss = infer(self.model, self.features[split], self.task, self.tokenizer, batch_size,
                              self.accelerator, f"eval {split}")
        self.model.train()
        return compute_metrics(self.task, self.metrics, self.splits[split], self.features[split], outputs, loss)

    def save_predictions(self, split: str, scores: Scores) -> None:
        if self.main:
            write_predictions(self.run_dir / "predictions" / f"{split}.jsonl", self.splits[split], scores)

    def evaluate_and_select(self) -> None:
        """Score the validation split; keep the weights when the monitored metric improves."""
        if "validation" not in self.splits:
            return
        state, monitor = self.state, self.state.monitor
        scores = self.evaluate("validation")
        values = {f"validation.{k}": v for k, v in scores.values.items()}
        if monitor is not None and monitor not in values:
            raise EngineError(f"training.monitor: {monitor!r} is not among the computed metrics: {', '.join(values)}")
        if monitor is None or state.improved(values[monitor]):  # the best model's predictions: the report's
            self.save_predictions("validation", scores)
        if monitor is not None and state.improved(values[monitor]):
            state.best_metric, state.best_step, state.best_epoch = values[monitor], state.global_step, state.epoch + 1
            state.best_metrics = values
            if self.main:
                save_weights(self.unwrapped, checkpoint_dir(self.run_dir) / "best.safetensors")
        self.callbacks.fire("on_evaluate", state, values)
        if self.training.report_to:
            self.accelerator.log({k.replace(".", "/", 1): v for k, v in values.items()}, step=state.global_step)
        summary = ", ".join(f"{k.split('.', 1)[1]} {v:.4f}" for k, v in values.items())
        console.info(f"epoch {state.epoch + 1} step {state.global_step}: validation {summary}")

    # --- saving ------------------------------------------------------------------------------------------------

    def save(self) -> RunResult:
        """The best model (by the monitor) is the one scored on test and saved."""
        resolved, state, accelerator = self.resolved, self.state, self.accelerator
        accelerator.wait_for_everyone()
        best = checkpoint_dir(self.run_dir) / "best.safetensors"
        if state.monitor is not None and best.exists():
            load_weights(self.unwrapped, best)
        results: dict[str, dict[str, float]] = {}
        if "validation" in self.splits:
            if state.best_metrics:  # its predictions were saved when it was reached
                results["validation"] = {k.split(".", 1)[1]: v for k, v in state.best_metrics.items()}
            else:
                scores = self.evaluate("validation")
                results["validation"] = scores.values
                self.save_predictions("validation", scores)
        if "test" in self.splits:
            scores = self.evaluate("test")
            results["test"] = scores.values
            self.save_predictions("test", scores)
        hf_loadable = False
        if self.main:
            tmp = self.run_dir / "model.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            infos = self.manager.infos
            extra = {"max_length": self.max_length,
                     "plugins": {c.component.plugin: infos[c.component.plugin].version
                                 for c in (resolved.task, resolved.head, resolved.data) if c.component.plugin in infos},
                     "data": {"format": resolved.data.name, "options": resolved.data.raw}}
            if self.adapter is not None:  # the adapter alone first; then it is merged into the encoder for model/
                adapter = adapter_meta(resolved.model.name, resolved.model.revision, self.adapter)
                shutil.rmtree(self.run_dir / f"{ADAPTER_DIR}.tmp", ignore_errors=True)
                write_adapter_dir(self.run_dir / f"{ADAPTER_DIR}.tmp", self.adapter, self.unwrapped.head,
                                  self.tokenizer, {"task": resolved.task.raw, "task_state": self.task.state_dict(),
                                                   "head": resolved.head.raw, "transformers_loadable": False,
                                                   **extra, "adapter": adapter})
                replace_dir(self.run_dir / f"{ADAPTER_DIR}.tmp", self.run_dir / ADAPTER_DIR)
                self.unwrapped.backbone = self.adapter.merge()
                extra["merged_adapter"] = adapter
            hf_loadable = save_model(
                tmp, self.unwrapped, self.tokenizer, task_config=resolved.task.raw, head_config=resolved.head.raw,
                task_state=self.task.state_dict(), hf_config=self.task.hf_config(),
                num_outputs=self.head_spec.num_outputs, extra=extra,
            )
            replace_dir(tmp, self.run_dir / "model")
            write_json(self.run_dir / "metrics.json", results)
        seconds = state.train_seconds
        self.write_manifest("completed", {
            "best": {"monitor": state.monitor, "value": state.best_metric, "epoch": state.best_epoch,
                     "step": state.best_step},
            "steps": state.global_step, "processes": accelerator.num_processes, "transformers_loadable": hf_loadable,

            "training_time": {"seconds": round(seconds, 3), "samples": state.samples,
                              "samples_per_second": round(state.samples / seconds, 2) if seconds else None},
        })
        report = self.write_report() if self.main and self.training.report else None
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return RunResult(self.run_dir, results, hf_loadable, report)

    def write_report(self) -> Path | None:
        """RUN_DIR/report/: a report that fails to draw costs the run nothing (the model is saved); it says why."""
        from engine.report.run_report import write_report

        try:
            return write_report(self.run_dir, self.task)
        except Exception as exc:
            console.warn(f"the run report could not be written ({type(exc).__name__}: {exc}); the run itself is "
                         f"complete. Try again with: engine report {self.run_dir} --debug")
            return None

    def write_manifest(self, status: str, extra: dict[str, Any] | None = None) -> None:
        if self.main:
            data_files = {name: Path(split.source) for name, split in self.splits.items()}
            plugins = [vars(info) for info in self.manager.infos.values()]
            extra = {"parameters": self.parameters,  # trainable: at any epoch of the freezing schedule
                     **({"adapter": self.adapter.describe()} if self.adapter is not None else {}), **(extra or {})}
            write_json(self.run_dir / "manifest.json", manifest(seed=self.training.seed, data_files=data_files,
                                                                plugins=plugins, status=status, extra=extra))


def run(resolved: ResolvedTask, manager: PluginManager, *, overwrite: bool = False, resume: bool = False,
        dry_run: bool = False, callbacks: Sequence[Any] = ()) -> RunResult | None:
    """Train as the task says, evaluate, and save the run directory (``dry_run``: set up, time one batch, return
    None). ``callbacks`` (``engine.Callback`` objects) join the task file's."""
    recipe = Run(resolved, manager, overwrite=overwrite, resume=resume, dry_run=dry_run, callbacks=callbacks)
    try:
        recipe.setup()
        if dry_run:
            recipe.dry_step()
            return None
        recipe.train()
        return recipe.save()
    finally:
        if recipe.lock is not None:  # a run that failed before writing anything leaves no trace
            recipe.lock.release() if recipe.writing else recipe.lock.abandon()


# What a checkpoint brings back into the state (the rest comes from the task file).
RESUMED_FIELDS = ("epoch", "epoch_batches", "global_step", "best_metric", "best_step", "best_epoch", "best_metrics",
                  "should_stop", "samples", "train_seconds")


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n:,}"


def trainable_at_any_epoch(freezer: Any, model: torch.nn.Module, epochs: int) -> None:
    """Leave trainable only the parameters that some epoch's freezing trains: the rest never enter DDP or decay.

    A schedule that unfreezes later (``gradual``) keeps its later layers in, frozen until their epoch; DDP then
    finds them unused in the steps before (``find_unused_parameters``), and syncs them once they train.
    """
    names = {name for name, _ in model.named_parameters()}
    trainable: set[str] = set()
    for epoch in range(epochs):
        freezer.apply(model, epoch)
        trainable |= {name for name, p in model.named_parameters() if p.requires_grad}
        if trainable == names:  # nothing left to find (no freezing; a gradual schedule fully unfrozen)
            break
    for name, param in model.named_parameters():
        param.requires_grad = name in trainable


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
