"""The run recipe: ``Run.setup`` builds a run's parts from its task file, one ``_setup_*`` step each, and hands them
to a ``Trainer`` (``engine.training.trainer``); ``run`` takes a run through setup, training and saving."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from engine import console
from engine.callbacks import CallbackList, TrainerState
from engine.config.choice import ResolvedTask
from engine.config.resolve import flatten, text_shape
from engine.config.resume import as_planned, as_saved, changed_keys
from engine.data.features import augment, augmentation_keys, encode_split, feature_key, lengths, row_starts
from engine.data.node import first_on_node
from engine.data.split import DataOptions, Split, hold_out, resolve_path
from engine.errors import ConfigError, ConfigIssue, EngineError, RunDirError
from engine.head import HeadSpec
from engine.model.adapters import Adapter, FreezeWithAdapter
from engine.model.encoder import EngineModel, default_max_length, load_pretrained
from engine.plugins.manager import PluginManager
from engine.rundir.checkpoints import clean_partial
from engine.rundir.layout import check_output_dir, claim_output_dir, prepare_output_dir
from engine.rundir.lock import RunLock
from engine.rundir.reading import read_json
from engine.training.batching import Batches, LengthGroupedBatches, StreamBatches, collate
from engine.training.checkpointing import restore
from engine.training.evaluation import Evaluator
from engine.training.multitask import (
    TasksEvaluator,
    TasksWriter,
    print_tasks_plan,
    task_batches,
    task_model,
    tasks_monitor,
)
from engine.training.plan import count_parameters, print_plan
from engine.training.precision import resolve_precision, training_device
from engine.training.trackers import flat_config, trackers
from engine.training.trainer import RunResult, Trainer
from engine.training.writer import RunWriter

STREAM_PASSES = 1000  # passes over a stream whose freezing schedule decides what enters DDP and the optimizer


def load_splits(resolved: ResolvedTask) -> dict[str, Split]:
    splits = resolved.data.build(resolved.base_dir)
    if "train" not in splits:
        raise ConfigError([ConfigIssue("data.train", "missing: a training file is needed to train")], resolved.source)
    for split in splits.values():
        if not split.streaming and not len(split):
            raise EngineError(f"{split.source}: the {split.name} split is empty")
    return splits


def monitor_and_mode(resolved: ResolvedTask, splits: dict[str, Split]) -> tuple[str | None, str]:
    """The metric that picks the best model (None without its split) and whether it improves up or down (decided
    when the task file was validated: see ``engine.config.monitor_direction``)."""
    monitor = resolved.monitor
    if monitor.split(".")[0] not in splits:
        if resolved.training.monitor:
            raise ConfigError([ConfigIssue("training.monitor", f"monitors {monitor!r} but data has no "
                                           f"{monitor.split('.')[0]!r} split")], resolved.source)
        return None, "max"
    return monitor, resolved.directions[monitor]


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


@dataclass
class ModelParts:
    """What ``Run._setup_model`` builds: the model before Accelerate prepares it, and what comes with it."""

    model: EngineModel
    head_spec: HeadSpec
    adapter: Adapter | None  # injected into the encoder in place (its forward unchanged)
    freezer: Any  # the freezing strategy, followed by the adapter's rule when there is an adapter


def fitting_rows(resolved: ResolvedTask, train: Split) -> Split:
    """What a task learns its label space (``fit``) and its baseline from: the training split, or, streamed, its
    first ``data.fit_rows`` rows (what a later row misses fails as it is read, with its line)."""
    fit_rows = getattr(resolved.data.options, "fit_rows", DataOptions.model_fields["fit_rows"].default)
    return train.head(fit_rows) if train.streaming else train


class Run:
    """One training run, in the shape of a torchtune recipe: ``setup`` builds the parts, the ``Trainer`` it returns
    trains and saves. The main process holds the run directory's lock (``lock``) from setup on."""

    def __init__(self, resolved: ResolvedTask, manager: PluginManager, *, overwrite: bool, resume: bool,
                 dry_run: bool = False, callbacks: Sequence[Any] = ()) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        #: The task.json a resume finds (read once: it is rewritten only once the changes are noted).
        self.saved_task = read_json(resolved.output_dir / "task.json") if resume else None
        if resume:  # a run saved by an older engine trains as it planned, whatever today's defaults
            as_planned(self.saved_task, resolved)
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

    def setup(self) -> Trainer:
        """The parts, in this order: the seeds make it part of the result. A dry run leaves the run directory alone."""
        resolved, training, accelerator = self.resolved, self.training, self.accelerator
        if resolved.tasks is not None:
            return self._setup_tasks(resolved.tasks)
        self._setup_process()
        splits = self._setup_data()
        tokenizer, backbone, max_length = self._setup_pretrained()
        features = self._setup_features(splits, tokenizer, max_length)
        parts = self._setup_model(backbone, tokenizer)
        metrics = [choice.build(self.task) for choice in resolved.metrics]
        callbacks = self._setup_callbacks()
        monitor, mode = monitor_and_mode(resolved, splits)
        batches = self._setup_loaders(features["train"], tokenizer, streaming=splits["train"].streaming)
        state = self._setup_state(batches, monitor, mode)
        model, optimizer, scheduler = self._setup_optimization(parts, state, streaming=batches.streaming)
        unwrapped = accelerator.unwrap_model(model)
        parameters = count_parameters(parts.model)
        print_plan(resolved, accelerator, state, splits, parameters, parts.adapter)
        writer = RunWriter(resolved, self.manager, main=self.main, tokenizer=tokenizer, max_length=max_length,
                           head_spec=parts.head_spec, adapter=parts.adapter, splits=splits, parameters=parameters)
        if not self.dry_run:
            self._setup_run_dir(writer, state, callbacks)
        evaluator = Evaluator(model, unwrapped, task=self.task, tokenizer=tokenizer, metrics=metrics, splits=splits,
                              features=features, accelerator=accelerator,
                              batch_size=training.eval_batch_size or training.batch_size * 2, writer=writer,
                              fitted_on=fitting_rows(resolved, splits["train"]),
                              benchmark=getattr(resolved.data.options, "benchmark", None))
        return Trainer(training, accelerator, state, callbacks, model=model, unwrapped=unwrapped, optimizer=optimizer,
                       scheduler=scheduler, batches=batches, freezer=parts.freezer, evaluator=evaluator, writer=writer)

    def _setup_process(self) -> None:
        """This process: quiet unless it is the main one, its threads, the run directory's lock, the seed."""
        from accelerate.utils import set_seed

        console.set_quiet(not self.main)
        if self.training.threads:
            torch.set_num_threads(self.training.threads)
        if self.dry_run:  # writes nothing, so needs no lock; the run it previews may still be refused: say so now
            try:
                check_output_dir(self.run_dir, **self.output_checks)
            except RunDirError as exc:
                console.warn(f"engine run without --dry-run would stop: {exc}")
        else:
            self.take_lock()
        set_seed(self.training.seed)

    def _setup_tasks(self, tasks: dict[str, ResolvedTask]) -> Trainer:
        """``setup`` for a multi-task file: each task's data and features, one encoder and a head per task, batches
        of one task each drawn by the sampler, evaluation per task (docs/multitask.md)."""
        resolved, accelerator = self.resolved, self.accelerator
        self._setup_process()
        tokenizer, backbone, max_length = self._setup_pretrained()
        splits = {name: self._setup_data(sub) for name, sub in tasks.items()}
        features = {name: self._setup_features(splits[name], tokenizer, max_length, sub) for name, sub in tasks.items()}
        model, head_specs = task_model(tasks, backbone, tokenizer, resolved.weights, self.training.seed)
        parts = self._with_adapter(model, next(iter(head_specs.values())))
        callbacks = self._setup_callbacks()
        monitor, mode = tasks_monitor(resolved, splits)
        batches = task_batches(tasks, splits, features, tokenizer, self.training, accelerator, resolved.sampler)
        state = self._setup_state(batches, monitor, mode)
        model_, optimizer, scheduler = self._setup_optimization(parts, state, streaming=False)
        unwrapped = accelerator.unwrap_model(model_)
        parameters = count_parameters(model)
        print_tasks_plan(resolved, accelerator, state, splits, parameters, batches, parts.adapter)
        writer = TasksWriter(resolved, self.manager, main=self.main, tokenizer=tokenizer, max_length=max_length,
                             head_specs=head_specs, adapter=parts.adapter, splits=splits, parameters=parameters)
        if not self.dry_run:
            self._setup_run_dir(writer, state, callbacks)
        evaluator = TasksEvaluator(model_, unwrapped, tasks=tasks, tokenizer=tokenizer, splits=splits,
                                   features=features, accelerator=accelerator, writer=writer,
                                   batch_size=self.training.eval_batch_size or self.training.batch_size * 2,
                                   fitted_on={name: fitting_rows(sub, splits[name]["train"])
                                              for name, sub in tasks.items()})
        return Trainer(self.training, accelerator, state, callbacks, model=model_, unwrapped=unwrapped,
                       optimizer=optimizer, scheduler=scheduler, batches=batches, freezer=parts.freezer,
                       evaluator=evaluator, writer=writer)

    def _setup_data(self, resolved: ResolvedTask | None = None) -> dict[str, Split]:
        """The splits: read, the label space learnt from train, the other splits checked against it, train augmented.
        The first process of each node reads (and tokenizes, in ``_setup_features``) into the data cache; the others
        map its files. ``resolved``: one task of a multi-task run (default: the run's one task)."""
        resolved = resolved or self.resolved
        training, accelerator, task = self.training, self.accelerator, resolved.task_object
        splits = first_on_node(accelerator, lambda: load_splits(resolved))
        train = splits["train"]
        # A stream is fitted on its first rows; what they miss (a label seen later) fails as it is read, with its line.
        task.fit(fitting_rows(resolved, train))
        fraction = getattr(resolved.data.options, "validation_split", None)
        if fraction:  # after fit: a label seen only in the held-out rows is still one the task knows
            splits["train"], splits["validation"] = hold_out(train, fraction, training.seed)
        for name, split in splits.items():
            if name != "train":
                task.check(split)
        if resolved.augment:  # the augmented split carries what each augmentation did, for the plan and manifest
            splits["train"] = first_on_node(accelerator, lambda: augment(
                splits["train"], [a.build() for a in resolved.augment],
                augmentation_keys(resolved.augment, self.manager.infos), training.seed,
                names=[a.name for a in resolved.augment],
                tokens=text_shape(task, resolved.data) == "tokens"))
        return splits

    def _setup_pretrained(self) -> tuple[Any, Any, int]:
        """The pretrained encoder's tokenizer and encoder, and the features' maximum length in tokens."""
        model = self.resolved.model
        console.info(f"Loading [bold]{model.name}[/]")
        tokenizer, backbone = load_pretrained(model.name, model.revision)
        return tokenizer, backbone, default_max_length(tokenizer, backbone, model.max_length)

    def _setup_features(self, splits: dict[str, Split], tokenizer: Any, max_length: int,
                        resolved: ResolvedTask | None = None) -> dict[str, Any]:
        """Every split encoded by the task into features, cached under a key of the task's settings and version."""
        resolved = resolved or self.resolved
        task = resolved.task_object
        version = getattr(self.manager.infos.get(resolved.task.component.plugin), "version", None)
        key = feature_key(resolved.task.raw, version)
        num_proc = getattr(resolved.data.options, "num_proc", None)
        return first_on_node(self.accelerator, lambda: {
            name: encode_split(task, split, tokenizer, max_length, key=key, num_proc=num_proc)
            for name, split in splits.items()})

    def _setup_model(self, backbone: Any, tokenizer: Any) -> ModelParts:
        """The encoder, the head the task asks for (seeded afresh: its initial weights do not depend on what the data
        steps drew), an adapter if the task file has one, and the freezing strategy."""
        from accelerate.utils import set_seed

        set_seed(self.training.seed)
        head_spec = self.task.head_spec(backbone.config.hidden_size)
        head = self.resolved.head.build(head_spec)
        return self._with_adapter(EngineModel(backbone, head, list(tokenizer.model_input_names)), head_spec)

    def _with_adapter(self, model: EngineModel, head_spec: HeadSpec) -> ModelParts:
        """The model's parts: an adapter injected into its encoder if the task file has one (shared by every task
        of a multi-task run), and the freezing strategy, followed by the adapter's rule."""
        resolved = self.resolved
        adapter = Adapter(resolved.adapter, model.backbone) if resolved.adapter else None
        freezer = resolved.freeze.build()
        if adapter is not None:
            freezer = FreezeWithAdapter(freezer, adapter)
        return ModelParts(model, head_spec, adapter, freezer)

    def _setup_callbacks(self) -> CallbackList:
        """The task file's callbacks, then the caller's."""
        resolved, extra = self.resolved, self.extra_callbacks
        return CallbackList([*(c.build() for c in resolved.callbacks), *extra],
                            [*(c.name for c in resolved.callbacks), *(type(c).__name__ for c in extra)])

    def _setup_loaders(self, features: Any, tokenizer: Any, *, streaming: bool) -> Batches:
        """Global batches of batch_size per process, each process reading its share (see the samplers).

        The loader has a generator of its own: each new iterator over a DataLoader draws a seed from the global RNG
        otherwise, and a resumed run, which starts its iterator at another moment, would then draw other dropout
        masks.
        """
        from accelerate.data_loader import prepare_data_loader

        training, accelerator = self.training, self.accelerator
        shards = {"num_processes": accelerator.num_processes, "rank": accelerator.process_index}
        pad = partial(collate, self.task, tokenizer)
        sampler: LengthGroupedBatches | StreamBatches
        if streaming:
            sampler = StreamBatches(features, training.batch_size, training.seed, training.group_by_length, **shards)
            loader = DataLoader(sampler, batch_size=None, generator=torch.Generator(), collate_fn=pad)
            epoch_size = None
        else:
            sampler = LengthGroupedBatches(lengths(features), training.batch_size, training.seed,
                                           training.group_by_length, starts=row_starts(features), **shards)
            loader = DataLoader(features, batch_sampler=sampler, generator=torch.Generator(), collate_fn=pad)
            epoch_size = len(sampler)
        # The sampler already shards; Accelerate only places batches and tells `accumulate` where an epoch ends.
        # (Not dispatched: a dispatcher would read the stream on the main process only, and drop our generator.)
        placed = prepare_data_loader(loader, accelerator.device, num_processes=1, process_index=0,
                                     put_on_device=True, dispatch_batches=False)
        return Batches(sampler, placed, epoch_size)

    def _setup_state(self, batches: Batches, monitor: str | None, mode: str) -> TrainerState:
        """Where training starts: the schedule of epochs and optimizer steps, and what picks the best model."""
        training = self.training
        if batches.epoch_size is None:  # a stream's length is unknown: passes over it until max_steps (required)
            assert training.max_steps is not None
            steps_per_epoch, epochs, total_steps = 0, training.max_steps, training.max_steps
        else:
            steps_per_epoch = math.ceil(batches.epoch_size / training.gradient_accumulation_steps)
            epochs = (math.ceil(training.max_steps / steps_per_epoch) if training.max_steps
                      else training.planned_epochs(steps_per_epoch))
            total_steps = training.max_steps or steps_per_epoch * epochs
        return TrainerState(run_dir=self.run_dir, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            max_steps=total_steps, is_main_process=self.main, monitor=monitor, mode=mode,
                            directions=dict(self.resolved.directions))

    def _setup_optimization(self, parts: ModelParts, state: TrainerState, *,
                            streaming: bool) -> tuple[torch.nn.Module, Any, Any]:
        """The model and optimizer as Accelerate prepared them, and the scheduler.

        Freezing comes before DDP wraps the model: what never trains stays out of it. (A stream's passes are bounded
        only by max_steps: its schedule is read for the first STREAM_PASSES.)
        """
        trainable_at_any_epoch(parts.freezer, parts.model, min(state.epochs, STREAM_PASSES) if streaming
                               else state.epochs)
        if parts.adapter is not None:
            parts.adapter.check_trains(parts.model.backbone, self.resolved.freeze.name)
        optimizer = self.resolved.optimizer.build(parts.model)
        # The scheduler is ours to step, once per optimizer step: Accelerate's wrapper would step it once per
        # process, which suits loaders it shards itself, not ours.
        scheduler = self.resolved.scheduler.build(optimizer, state.max_steps)
        self.accelerator.register_for_checkpointing(scheduler)
        model, optimizer = self.accelerator.prepare(parts.model, optimizer)
        return model, optimizer, scheduler

    def _setup_run_dir(self, writer: RunWriter, state: TrainerState, callbacks: CallbackList) -> None:
        """Only now, with data and model loaded without error, does an earlier run make way; a resumed run takes up
        its latest checkpoint."""
        self.writing = True
        if self.main:
            prepare_output_dir(self.run_dir, overwrite=self.overwrite, resume=self.resume)
            clean_partial(self.run_dir)
        self.accelerator.wait_for_everyone()
        if self.resume:
            self.note_resume_changes(writer)
            restore(self.accelerator, self.run_dir, state, callbacks)
        else:
            writer.task_file()
        writer.manifest("running")
        if self.training.report_to:
            self.accelerator.init_trackers(self.run_dir.name, config=flat_config(self.resolved.to_dict()))

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
                "batch_size": self.training.batch_size, "task": self.task_json() if self.resume else None,
                "inputs": self.input_files()}

    def input_files(self) -> list[Path]:
        """The files this run reads: its task file and data files (every task's)."""
        files: list[Path] = []
        for resolved in (self.resolved.tasks or {"": self.resolved}).values():
            options = resolved.data.options
            named = options.files().values() if isinstance(options, DataOptions) else ()  # a format's own model
            files.extend(resolve_path(f, self.resolved.base_dir) for f in named)
        return [p for p in (self.resolved.source, *files) if p is not None]

    def task_json(self) -> dict[str, Any]:
        """The resolved task as task.json records it (JSON types: tuples as lists, paths as strings)."""
        return json.loads(json.dumps(self.resolved.to_dict(), default=str))

    def note_resume_changes(self, writer: RunWriter) -> None:
        """A resume may change what ``engine.config.resume`` allows (train longer, save more often): say what
        changed, and record it in task.json."""
        saved, now = self.saved_task, self.task_json()
        if not isinstance(saved, dict):
            return
        safe, _ = changed_keys(saved, now)  # the rest was refused when the directory was claimed
        if safe:
            old, new = as_saved(saved), flatten(now)
            console.info("Resuming with " + ", ".join(f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
                                                      for k in safe))
            writer.task_file()


def run(resolved: ResolvedTask, manager: PluginManager, *, overwrite: bool = False, resume: bool = False,
        dry_run: bool = False, callbacks: Sequence[Any] = ()) -> RunResult | None:
    """Train as the task says, evaluate, and save the run directory (``dry_run``: set up, time one batch, return
    None). ``callbacks`` (``engine.Callback`` objects) join the task file's."""
    recipe = Run(resolved, manager, overwrite=overwrite, resume=resume, dry_run=dry_run, callbacks=callbacks)
    try:
        trainer = recipe.setup()
        if dry_run:
            trainer.dry_step()
            return None
        trainer.train()
        return trainer.save()
    finally:
        if recipe.lock is not None:  # a run that failed before writing anything leaves no trace
            recipe.lock.release() if recipe.writing else recipe.lock.abandon()
