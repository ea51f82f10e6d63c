"""The parts of a multi-task run (``Run._setup_tasks`` in ``engine.training.recipe`` puts them together): one
encoder with a head per task, batches of one task each in the order the sampler draws, evaluation and selection per
task and by a combined monitor, and a model/ folder with one encoder and a head per task (docs/multitask.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from engine import console
from engine.atomic import replace_dir
from engine.callbacks import TrainerState
from engine.config.choice import ResolvedTask
from engine.config.multitask import COMBINED, of_task
from engine.data.features import lengths, row_starts
from engine.data.split import Split
from engine.errors import ConfigError, ConfigIssue, EngineError
from engine.head import HeadSpec
from engine.inference.loop import infer
from engine.inference.scores import Scores, baseline_values, compute_metrics
from engine.model.adapters import ADAPTER_DIR, Adapter, adapter_meta
from engine.model.encoder import EngineModel
from engine.model.multitask import MultiTaskModel, save_tasks_model, write_task_heads
from engine.plugins.manager import PluginManager
from engine.training.batching import Batches, LengthGroupedBatches, StreamBatches, TaskBatches, TaskLoader
from engine.training.evaluation import Evaluator, published_entry, save_weights
from engine.training.plan import (
    count,
    describe_adapter,
    describe_batch,
    describe_device,
    describe_splits,
    describe_steps,
)
from engine.training.writer import RunWriter

#: How the plan and docs/multitask.md define an epoch of a multi-task run.
EPOCH = "an epoch is as many batches as all the tasks have together"


def task_model(tasks: dict[str, ResolvedTask], backbone: Any, tokenizer: Any, weights: dict[str, float],
               seed: int) -> tuple[MultiTaskModel, dict[str, HeadSpec]]:
    """One encoder, and each task's head as its plugin builds it from the task's head spec (seeded afresh, as a
    one-task run's head is)."""
    from accelerate.utils import set_seed

    set_seed(seed)
    specs = {name: t.task_object.head_spec(backbone.config.hidden_size) for name, t in tasks.items()}
    heads = {name: t.head.build(specs[name]) for name, t in tasks.items()}
    return MultiTaskModel(backbone, heads, list(tokenizer.model_input_names), weights), specs


def tasks_monitor(resolved: ResolvedTask, splits: dict[str, dict[str, Split]]) -> tuple[str | None, str]:
    """The monitor of a multi-task run (None when no task it reads has a validation split) and its direction."""
    monitor = resolved.monitor
    with_validation = [name for name, task_splits in splits.items() if "validation" in task_splits]
    if monitor == COMBINED:
        return (monitor, "max") if with_validation else (None, "max")
    name = monitor.split(".")[1]
    if name not in with_validation:
        raise ConfigError([ConfigIssue("training.monitor", f"monitors {monitor!r} but task {name!r} has no "
                                       "validation split")], resolved.source)
    return monitor, resolved.directions[monitor]


def task_batches(tasks: dict[str, ResolvedTask], splits: dict[str, dict[str, Split]],
                 features: dict[str, dict[str, Any]], tokenizer: Any, training: Any, accelerator: Any,
                 sampler: Any) -> Batches:
    """Each task's length-grouped global batches (read from its stream as they are drawn, for a streamed task), and
    the order of tasks the sampler draws."""
    shards = {"num_processes": accelerator.num_processes, "rank": accelerator.process_index}
    samplers: dict[str, LengthGroupedBatches | StreamBatches] = {}
    for name in tasks:
        train = features[name]["train"]
        if splits[name]["train"].streaming:
            console.info(f"{name}: counting the batches of its training stream (one read)")
            samplers[name] = StreamBatches(train, training.batch_size, training.seed, training.group_by_length,
                                           **shards)
        else:
            samplers[name] = LengthGroupedBatches(lengths(train), training.batch_size, training.seed,
                                                  training.group_by_length, starts=row_starts(train), **shards)
    order = TaskBatches(samplers, sampler, training.seed)
    loader = TaskLoader(order, {name: f["train"] for name, f in features.items()},
                        {name: t.task_object for name, t in tasks.items()}, tokenizer, accelerator.device)
    return Batches(order, loader, len(order))


def print_tasks_plan(resolved: ResolvedTask, accelerator: Any, state: TrainerState,
                     splits: dict[str, dict[str, Split]], parameters: dict[str, int], batches: Batches,
                     adapter: Adapter | None) -> None:
    """The plan of a multi-task run: each task's data, batches, chance of a batch and loss weight; the epoch."""
    assert isinstance(batches.sampler, TaskBatches) and resolved.tasks is not None
    order, training = batches.sampler, resolved.training
    lines = []
    for name, sub in resolved.tasks.items():
        data = describe_splits(splits[name])
        lines.append(f"  {name:<9} {sub.task.name}, head {sub.head.name}: {data}; {order.sizes[name]:,} batches, "
                     f"p {order.tasks.probabilities[name]:.3f}, weight {resolved.weights[name]:g}\n")
    total, trainable = parameters["total"], parameters["trainable"]
    console.info(
        "Plan\n"
        f"  model     {resolved.model.name}: {count(total)} parameters, {count(trainable)} trainable "
        f"({trainable / max(total, 1):.1%}); one encoder, {len(resolved.tasks)} heads{describe_adapter(adapter)}\n"
        + "".join(lines)
        + f"  sampler   {describe_sampler(resolved.sampler)}; {EPOCH} ({len(order):,})\n"
        f"  training  {describe_steps(training, state, streaming=False)}, "
        f"{describe_batch(training, accelerator.num_processes)}\n"
        f"  device    {describe_device(accelerator)}")


def describe_sampler(sampler: Any) -> str:
    """How the plan names the sampler: ``proportional``, ``uniform``, ``temperature (T 2)``."""
    if isinstance(sampler, dict):
        return f"{sampler.get('name')} (T {sampler.get('T', 2.0):g})"
    return str(sampler)


class TasksWriter(RunWriter):
    """``RunWriter`` for a multi-task run: model/ holds one encoder and heads/NAME/ per task (and adapter/, with an
    adapter, the adapter and the same heads); predictions go to predictions/NAME/SPLIT.jsonl; no model card yet,
    and the run report with each task's own sections."""

    def __init__(self, resolved: ResolvedTask, manager: PluginManager, *, main: bool, tokenizer: Any,
                 max_length: int, head_specs: dict[str, HeadSpec], adapter: Adapter | None,
                 splits: dict[str, dict[str, Split]], parameters: dict[str, int]) -> None:
        first = next(iter(splits))
        super().__init__(resolved, manager, main=main, tokenizer=tokenizer, max_length=max_length,
                         head_spec=head_specs[first], adapter=adapter, splits=splits[first], parameters=parameters)
        self.tasks = resolved.tasks or {}
        self.data_files = {f"{name}.{split}": Path(s.source) for name, task_splits in splits.items()
                           for split, s in task_splits.items()}
        self.augmentation = [{"task": name, **s.to_dict()} for name, task_splits in splits.items()
                             if "train" in task_splits for s in task_splits["train"].augmentation]

    def model_card(self) -> None:
        return None

    def report(self) -> Path | None:
        """The run report: the summary, the learning curves, every task's metrics and each task's own sections on
        its predictions (titled with its name)."""
        from engine.report.run_report import write_report

        if not self.main:
            return None
        try:
            return write_report(self.run_dir, tasks={name: sub.task_object for name, sub in self.tasks.items()})
        except Exception as exc:
            console.warn(f"the run report could not be written ({type(exc).__name__}: {exc}); the run itself is "
                         f"complete. Try again with: engine report {self.run_dir} --debug")
            return None

    def model(self, model: EngineModel) -> bool:
        if not self.main:
            return False
        assert isinstance(model, MultiTaskModel)
        tmp, infos = self.run_dir / "model.tmp", self.manager.infos
        shutil.rmtree(tmp, ignore_errors=True)
        metas = {}
        for name, sub in self.tasks.items():
            plugins = {c.component.plugin: infos[c.component.plugin].version
                       for c in (sub.task, sub.head, sub.data) if c.component.plugin in infos}
            metas[name] = {"task": sub.task.filled, "task_state": sub.task_object.state_dict(), "head": sub.head.filled,
                           "plugins": plugins, "data": {"format": sub.data.name, "options": sub.data.filled},
                           "weight": self.resolved.weights[name]}
        plugins = {k: v for meta in metas.values() for k, v in meta["plugins"].items()}
        extra: dict[str, Any] = {"max_length": self.max_length, "plugins": plugins}
        if self.adapter is not None:
            extra["merged_adapter"] = self.tasks_adapter_dir(model, self.adapter, metas, extra)
        save_tasks_model(tmp, model, self.tokenizer, metas, extra)
        replace_dir(tmp, self.run_dir / "model")
        return False

    def tasks_adapter_dir(self, model: MultiTaskModel, adapter: Adapter, metas: dict[str, dict[str, Any]],
                          extra: dict[str, Any]) -> dict[str, Any]:
        """RUN_DIR/adapter/ (the adapter, the tokenizer and every task's head), then the adapter merged into the
        shared encoder; returns what describes it."""
        resolved, tmp = self.resolved, self.run_dir / f"{ADAPTER_DIR}.tmp"
        described = adapter_meta(resolved.model.name, resolved.model.revision, adapter)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        adapter.save(tmp)
        write_task_heads(tmp, model, self.tokenizer, metas, {**extra, "adapter": described})
        replace_dir(tmp, self.run_dir / ADAPTER_DIR)
        model.replace_backbone(adapter.merge())
        return described


class TasksEvaluator(Evaluator):
    """Scores each task's splits with its own view of the model (the shared encoder and its head); the values are
    ``validation.NAME.METRIC``, and ``validation.combined``: the mean of each task's default monitor, a metric that
    improves downwards (a loss, an error) counted negated so that the mean improves upwards."""

    def __init__(self, model: torch.nn.Module, unwrapped: torch.nn.Module, *, tasks: dict[str, ResolvedTask],
                 tokenizer: Any, splits: dict[str, dict[str, Split]], features: dict[str, dict[str, Any]],
                 accelerator: Any, writer: RunWriter, batch_size: int, fitted_on: dict[str, Split]) -> None:
        super().__init__(model, unwrapped, task=None, tokenizer=tokenizer, metrics=[], splits={}, features={},
                         accelerator=accelerator, batch_size=batch_size, writer=writer)
        self.tasks_fitted_on = fitted_on
        assert isinstance(unwrapped, MultiTaskModel)
        self.tasks, self.tasks_model = tasks, unwrapped
        self.task_splits, self.task_features = splits, features
        self.task_metrics = {name: [c.build(t.task_object) for c in t.metrics] for name, t in tasks.items()}

    def score_task(self, name: str, split: str) -> Scores:
        task = self.tasks[name].task_object
        features = self.task_features[name][split]
        outputs, loss = infer(self.tasks_model.view(name), features, task, self.tokenizer, self.batch_size,
                              self.accelerator, f"eval {name} {split}")
        self.model.train()
        return compute_metrics(task, self.task_metrics[name], self.task_splits[name][split], features, outputs, loss)

    def baseline_name(self) -> str:
        names = {name: getattr(t.task_object, "baseline_name", "") for name, t in self.tasks.items()}
        return "; ".join(f"{name}: {what}" for name, what in names.items() if what)

    def baselines(self) -> dict[str, dict[str, float | None]]:
        """Each task's baseline on its validation and test splits, ``NAME.METRIC`` by split."""
        found: dict[str, dict[str, float | None]] = {}
        for split in ("validation", "test"):
            for name in self.with_split(split):
                values = baseline_values(self.tasks[name].task_object, self.task_metrics[name],
                                         self.tasks_fitted_on[name], self.task_splits[name][split])
                if values is not None:
                    found.setdefault(split, {}).update({f"{name}.{k}": v for k, v in values.items()})
        return found

    def published(self, results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        """Each task's published scores on its benchmark beside its own (``data.benchmark`` in its entry)."""
        entries = []
        for name, task in self.tasks.items():
            own = {split: of_task(values, name) for split, values in results.items()}
            entries += published_entry(name, task.task_object, getattr(task.data.options, "benchmark", None), own,
                                       self.tasks_model)
        return entries

    def with_split(self, split: str) -> list[str]:
        return [name for name in self.tasks if split in self.task_splits[name]]

    def scores(self, split: str) -> tuple[dict[str, Scores], dict[str, float]]:
        """Each task's scores on ``split`` and the values ``SPLIT.NAME.METRIC`` (with ``SPLIT.combined``)."""
        scores = {name: self.score_task(name, split) for name in self.with_split(split)}
        values = {f"{split}.{name}.{k}": v for name, s in scores.items() for k, v in s.values.items()}
        signed = []
        for name in scores:
            own = self.tasks[name].monitor
            key = f"{split}.{name}.{own.split('.', 1)[1]}"
            if key not in values:
                raise EngineError(f"task {name!r}: its monitor {own!r} is not among its metrics")
            signed.append(values[key] if self.tasks[name].directions.get(own, "max") == "max" else -values[key])
        if signed:
            values[f"{split}.combined"] = sum(signed) / len(signed)
        return scores, values

    def validate(self, state: TrainerState) -> dict[str, float] | None:
        if not self.with_split("validation"):
            return None
        monitor = state.monitor
        scores, values = self.scores("validation")
        if monitor is not None and monitor not in values:
            raise EngineError(f"training.monitor: {monitor!r} is not among the computed metrics: {', '.join(values)}")
        improved = monitor is not None and state.improved(values[monitor])
        if monitor is None or improved:
            for name, s in scores.items():
                self.writer.predictions(f"{name}/validation", self.task_splits[name]["validation"], s)
        if monitor is not None and improved:
            state.best_metric, state.best_step, state.best_epoch = values[monitor], state.global_step, state.epoch + 1
            state.best_metrics = values
            if self.accelerator.is_main_process:
                save_weights(self.unwrapped, self.best)
        return values

    def final_scores(self, state: TrainerState) -> dict[str, dict[str, float]]:
        results: dict[str, dict[str, float]] = {}
        if self.with_split("validation"):
            values = state.best_metrics
            if not values:
                scores, values = self.scores("validation")
                for name, s in scores.items():
                    self.writer.predictions(f"{name}/validation", self.task_splits[name]["validation"], s)
            results["validation"] = {k.split(".", 1)[1]: v for k, v in values.items()}
        if self.with_split("test"):
            scores, values = self.scores("test")
            results["test"] = {k.split(".", 1)[1]: v for k, v in values.items()}
            for name, s in scores.items():
                self.writer.predictions(f"{name}/test", self.task_splits[name]["test"], s)
        return results
