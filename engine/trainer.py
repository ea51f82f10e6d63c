"""The run: data, model, the Accelerate loop, evaluation, saving. Reads top to bottom."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, Sampler

from engine import console
from engine.adapters import ADAPTER_DIR, Adapter, FreezeWithAdapter, adapter_meta, write_adapter_dir
from engine.callbacks import CallbackList, StepLogs, TrainerState
from engine.checkpoints import checkpoint_dir, clean_partial, latest_checkpoint, read_trainer_state, save_checkpoint
from engine.config import ResolvedTask
from engine.data import DataOptions, Split, hold_out
from engine.errors import ConfigError, ConfigIssue, EngineError, RunDirError
from engine.features import augment, encode_split, feature_key, lengths, predictions_of, row_starts, starts_of, take
from engine.head import HeadOutput
from engine.model import EngineModel, default_max_length, load_pretrained, save_model
from engine.plugins import PluginManager
from engine.precision import resolve_precision, training_device
from engine.run import RunLock, check_run_dir, manifest, prepare_run_dir, replace_dir, write_json
from engine.trackers import flat_config, trackers

T = TypeVar("T")


# --- batching ----------------------------------------------------------------------------------------------------


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar-length features: far less padding than random batches, still random order.

    Features are shuffled, cut into chunks of 50 batches, each chunk sorted by length and split into batches, and
    the batches shuffled. Seeded by ``seed`` and the epoch, so runs reproduce.

    With several processes the batches are global: ``batch_size`` features for each of ``num_processes``, and this
    process (``rank``) takes every ``num_processes``-th feature of each (similar lengths, so no process waits on a
    longer share). N processes with batch B therefore see the batches one process with batch N*B sees, in the same
    order. ``start_epoch(epoch, skip)`` starts an epoch ``skip`` batches in, for an exact resume.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: bool = True, *,
                 num_processes: int = 1, rank: int = 0, starts: Any = None) -> None:
        self.lengths, self.seed, self.group = lengths, seed, group
        self.batch_size, self.num_processes, self.rank = batch_size, num_processes, rank
        self.epoch, self.skip = 0, 0
        #: ``row_starts`` of the features (None: every feature is a row of its own).
        self.starts = starts
        #: Rows in each global batch of the epoch being iterated (``rows_in``), all processes' shares together.
        self.batch_rows: list[int] = []

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        # Not `set_epoch`: Accelerate calls that on samplers with its own count of iterations, wrong after a resume.
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / (self.batch_size * self.num_processes))

    def global_batches(self) -> list[list[int]]:
        size = self.batch_size * self.num_processes
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.group:
            return [order[i : i + size] for i in range(0, len(order), size)]
        chunk = size * 50
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i], reverse=True)
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        full = [b for b in batches if len(b) == size]
        rng.shuffle(full)
        return full + [b for b in batches if len(b) != size]  # the one short batch, if any, goes last

    def rows_in(self, batch: int) -> int:
        """The rows the epoch's ``batch``-th global batch trains on (a row counts in the batch of its first
        feature): every process knows the whole batch's count, with no communication."""
        return self.batch_rows[batch]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.global_batches()
        starts = self.starts
        self.batch_rows = [len(b) for b in batches] if starts is None else [int(starts[b].sum()) for b in batches]
        for batch in batches[self.skip :]:
            if len(batch) < self.num_processes:  # every process needs a share: top up from the first batch
                batch = batch + batches[0][: self.num_processes - len(batch)]
            yield batch[self.rank :: self.num_processes]


class StreamBatches(torch.utils.data.IterableDataset):
    """Length-grouped batches from a stream of features (``data.streaming``), in flat memory.

    The stream is read in buffers of ``BUFFER_BATCHES`` global batches; each buffer is shuffled, grouped by length
    and cut into batches as ``LengthGroupedBatches`` does with a whole split, and this process takes its share. The
    stream is read again for every epoch (a new shuffle within each buffer), and ``start_epoch(epoch, skip)`` skips
    ``skip`` batches by reading past them: a resume is exact, at the cost of reading the skipped part again.
    """

    def __init__(self, features: Any, batch_size: int, seed: int, group: bool = True, *,
                 num_processes: int = 1, rank: int = 0) -> None:
        self.features, self.batch_size, self.seed, self.group = features, batch_size, seed, group
        self.num_processes, self.rank = num_processes, rank
        self.epoch, self.skip = 0, 0
        self.batch_rows: dict[int, int] = {}  # rows of the global batches read but not yet trained on

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def rows_in(self, batch: int) -> int:
        """As ``LengthGroupedBatches.rows_in``, for a batch already read (asked for once, in order)."""
        return self.batch_rows.pop(batch)

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        size = self.batch_size * self.num_processes * BUFFER_BATCHES
        done, last_row = 0, None
        buffer: list[dict[str, Any]] = []
        self.batch_rows = {}
        for part, feature in enumerate(self.features):
            buffer.append(feature)
            if len(buffer) == size:
                yield from self._batches(buffer, part, done, last_row)
                done += math.ceil(len(buffer) / (self.batch_size * self.num_processes))
                buffer, last_row = [], buffer[-1]["row"]
        if buffer:
            yield from self._batches(buffer, -1, done, last_row)

    def _batches(self, buffer: list[dict[str, Any]], part: int, done: int,
                 last_row: int | None) -> Iterator[list[dict[str, Any]]]:
        sampler = LengthGroupedBatches([f["length"] for f in buffer], self.batch_size, self.seed * 7919 + part,
                                       self.group, num_processes=self.num_processes, rank=self.rank,
                                       starts=starts_of([f["row"] for f in buffer], last_row))
        skip = max(0, self.skip - done)
        sampler.start_epoch(self.epoch, skip=skip)
        for number, indices in enumerate(sampler, start=done + skip):
            self.batch_rows[number] = sampler.rows_in(number - done)
            yield [buffer[i] for i in indices]


LOSS_SYNC_STEPS = 10  # optimizer steps between the progress bar's readings of the loss
LOSS_WINDOW = 50  # the progress bar's loss: the mean of the last LOSS_WINDOW steps
BUFFER_BATCHES = 50  # global batches in a streaming shuffle buffer (as in one sorted chunk of LengthGroupedBatches)
STREAM_PASSES = 1000  # passes over a stream whose freezing schedule decides what enters DDP and the optimizer


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches, longest first: least padding, and the first batch shows the worst-case memory."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(task: Any, tokenizer: Any, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The training loader's collate_fn: the task pads its features (arguments as the Task protocol has them)."""
    return task.collate(features, tokenizer)


def first_on_node(accelerator: Any, work: Callable[[], T]) -> T:
    """``work()`` on the first process of each node, then on the others (which then find its results in the data
    cache). An error in the first process reaches every process as the same error, rather than as a broken
    barrier on the others."""
    from accelerate.utils import gather_object

    if accelerator.num_processes == 1:
        return work()
    failure: EngineError | None = None
    result: Any = None
    if accelerator.is_local_main_process:
        try:
            result = work()
        except EngineError as exc:
            failure = exc
    messages = [m for m in gather_object([str(failure) if failure else None]) if m]
    if failure is not None:
        raise failure
    if messages:
        shared = EngineError(messages[0])
        shared.reported = True  # the first process prints it; the CLI does not print it again here
        raise shared
    return result if accelerator.is_local_main_process else work()


# --- inference, shared by evaluation, `engine evaluate` and `engine predict` ------------------------------------


def infer(model: torch.nn.Module, features: Any, task: Any, tokenizer: Any, batch_size: int,
          accelerator: Any, description: str) -> tuple[list[Any], float | None]:
    """Outputs for every feature, in feature order, gathered from all processes; and the mean loss if labelled.

    Exact under any number of processes: global batches (longest first) are split between the processes as in
    training, with no feature repeated to even them out; a process whose share of the last batch is empty still
    takes part in the gather. The loss is pooled over what each batch's loss averages (``HeadOutput.loss_weight``).
    """
    from accelerate.utils import gather_object

    n, rank = accelerator.num_processes, accelerator.process_index
    batches = sorted_batches(lengths(features), batch_size * n)
    outputs: list[Any] = [None] * len(features)
    starts = row_starts(features)
    loss_sum, loss_count, done = 0.0, 0.0, 0
    model.eval()
    with torch.inference_mode(), console.progress(transient=True) as bar:
        job = bar.add_task(description, total=int(starts.sum()), unit="rows", postfix="")
        for indices in (b[rank::n] for b in batches):
            pairs: list[tuple[int, Any]] = []
            if indices:
                batch = task.collate(take(features, indices), tokenizer)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                out = model(**batch)
                pairs = list(zip(indices, task.outputs(batch, out)))
                if out.loss is not None:
                    weight = float(out.loss_weight) if out.loss_weight is not None else len(indices)
                    loss_sum += float(out.loss) * weight
                    loss_count += weight
            for i, value in (gather_object(pairs) if n > 1 else pairs):
                outputs[i] = value
                done += int(starts[i])
            bar.update(job, completed=done)
    totals = accelerator.reduce(torch.tensor([loss_sum, loss_count], dtype=torch.float64), reduction="sum").tolist()
    return outputs, (totals[0] / totals[1] if totals[1] else None)


@dataclass
class Scores:
    """One split scored: its metrics, and the predictions and references they came from (one per row)."""

    values: dict[str, float]
    predictions: list[Any]
    references: list[Any]


def compute_metrics(task: Any, metrics: list[Any], split: Split, features: Any,
                    outputs: list[Any], loss: float | None) -> Scores:
    predictions = predictions_of(task, split, features, outputs)
    references = task.references(split)
    values: dict[str, float] = {}
    if loss is not None:
        values["loss"] = loss
    for metric in metrics:
        values.update(metric(predictions, references))
    return Scores(values, predictions, references)


def write_predictions(path: Path, split: Split, scores: Scores) -> None:
    """RUN_DIR/predictions/SPLIT.jsonl: per row, its line in the data file, the prediction and the reference (what
    the run report reads), written whole or not at all."""
    lines = (row[-1] for row in split.values())
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", encoding="utf-8") as f:
        for line, prediction, reference in zip(lines, scores.predictions, scores.references):
            f.write(json.dumps({"line": line, "prediction": prediction, "reference": reference},
                               ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


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
    training = resolved.training
    monitor = training.monitor or task.monitor
    if monitor.split(".")[0] not in splits:
        if training.monitor:
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
        self.lock = RunLock(self.run_dir)

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
                check_run_dir(self.run_dir, overwrite=self.overwrite, resume=self.resume)
            except RunDirError as exc:
                console.warn(f"engine run without --dry-run would stop: {exc}")
        else:
            self.take_lock()
            check_run_dir(self.run_dir, overwrite=self.overwrite, resume=self.resume)
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
        if self.main:
            prepare_run_dir(self.run_dir, overwrite=self.overwrite, resume=self.resume)
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
                self.lock.acquire()
            except EngineError as exc:
                refusal[0] = str(exc)
        if self.accelerator.num_processes > 1:
            broadcast_object_list(refusal)
        if refusal[0] is not None:
            raise RunDirError(refusal[0])

    def restore(self) -> None:
        path = latest_checkpoint(self.run_dir)
        assert path is not None  # check_run_dir made sure
        saved = read_trainer_state(path)
        # The sampler's global batches depend on both: another count would resume at another place in the data.
        was = (saved.get("processes", 1), saved.get("batch_size", self.training.batch_size))
        now = (self.accelerator.num_processes, self.training.batch_size)
        if was != now:
            raise RunDirError(f"--resume: {path} was written by {was[0]} process(es) with training.batch_size "
                              f"{was[1]}; this run has {now[0]} with {now[1]}. Resume with the same, or start a new "
                              "run.")
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
        from engine.report import write_report

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
        recipe.lock.release()


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

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
