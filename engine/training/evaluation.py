"""Evaluation inside a run: a split scored with the inference loop, the best weights by the monitored metric kept in
checkpoints/best.safetensors, and the predictions of the model the report shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.atomic import atomic_path
from engine.callbacks import TrainerState
from engine.data.split import Split
from engine.errors import EngineError
from engine.inference.loop import infer
from engine.inference.scores import Scores, baseline_values, compute_metrics, known_benchmarks, published_beside
from engine.rundir.checkpoints import checkpoint_dir
from engine.training.writer import RunWriter


class Evaluator:
    """Scores the run's splits with the model in training (``model``, prepared; ``unwrapped``, its module)."""

    def __init__(self, model: torch.nn.Module, unwrapped: torch.nn.Module, *, task: Any, tokenizer: Any,
                 metrics: list[Any], splits: dict[str, Split], features: dict[str, Any], accelerator: Any,
                 batch_size: int, writer: RunWriter, fitted_on: Split | None = None,
                 benchmark: str | None = None) -> None:
        self.model, self.unwrapped, self.task, self.tokenizer = model, unwrapped, task, tokenizer
        self.benchmark = benchmark  # data.benchmark: the public benchmark whose published scores are shown
        self.metrics, self.splits, self.features = metrics, splits, features
        self.fitted_on = fitted_on  # the training rows the task was fitted on: what its baseline learns from
        self.accelerator, self.batch_size, self.writer = accelerator, batch_size, writer
        self.best = checkpoint_dir(writer.run_dir) / "best.safetensors"

    def score(self, name: str) -> Scores:
        outputs, loss = infer(self.model, self.features[name], self.task, self.tokenizer, self.batch_size,
                              self.accelerator, f"eval {name}")
        self.model.train()
        return compute_metrics(self.task, self.metrics, self.splits[name], self.features[name], outputs, loss)

    def validate(self, state: TrainerState) -> dict[str, float] | None:
        """Score the validation split; keep the weights when the monitored metric improves. Returns the values keyed
        ``validation.NAME``, or None without a validation split."""
        if "validation" not in self.splits:
            return None
        monitor = state.monitor
        scores = self.score("validation")
        values = {f"validation.{k}": v for k, v in scores.values.items()}
        if monitor is not None and monitor not in values:
            raise EngineError(f"training.monitor: {monitor!r} is not among the computed metrics: {', '.join(values)}")
        if monitor is None or state.improved(values[monitor]):  # the best model's predictions: the report's
            self.writer.predictions("validation", self.splits["validation"], scores)
        if monitor is not None and state.improved(values[monitor]):
            state.best_metric, state.best_step, state.best_epoch = values[monitor], state.global_step, state.epoch + 1
            state.best_metrics = values
            if self.accelerator.is_main_process:
                save_weights(self.unwrapped, self.best)
        return values

    def load_best(self, state: TrainerState) -> None:
        """Back to the best weights by the monitor, when there is one."""
        if state.monitor is not None and self.best.exists():
            load_weights(self.unwrapped, self.best)

    def baseline_name(self) -> str:
        return str(getattr(self.task, "baseline_name", "") or "")

    def baselines(self) -> dict[str, dict[str, float | None]]:
        """The task's baseline scored on the validation and test splits (``Task.baseline``), by split; {} when the
        task has none."""
        found: dict[str, dict[str, float | None]] = {}
        for name in ("validation", "test"):
            if name in self.splits and self.fitted_on is not None:
                values = baseline_values(self.task, self.metrics, self.fitted_on, self.splits[name])
                if values is not None:
                    found[name] = values
        return found

    def published(self, results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
        """The published scores on the run's benchmark beside its own (``published_beside``), with the benchmarks
        the task knows: one entry, or none when the task file names no benchmark."""
        return published_entry(None, self.task, self.benchmark, results, self.unwrapped)

    def final_scores(self, state: TrainerState) -> dict[str, dict[str, float]]:
        """The final model's metrics.json: its validation scores and, when there is a test split, its test scores
        (and their predictions)."""
        results: dict[str, dict[str, float]] = {}
        if "validation" in self.splits:
            if state.best_metrics:  # its predictions were saved when it was reached
                results["validation"] = {k.split(".", 1)[1]: v for k, v in state.best_metrics.items()}
            else:
                scores = self.score("validation")
                results["validation"] = scores.values
                self.writer.predictions("validation", self.splits["validation"], scores)
        if "test" in self.splits:
            scores = self.score("test")
            results["test"] = scores.values
            self.writer.predictions("test", self.splits["test"], scores)
        return results


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def published_entry(name: str | None, task: Any, benchmark: str | None, results: dict[str, dict[str, float]],
                    model: Any) -> list[dict[str, Any]]:
    """One task's published scores beside the run's (``name``: its name in a multi-task run), as a list of one
    entry, or [] without a benchmark."""
    if not benchmark:
        return []
    config = getattr(getattr(model, "backbone", None), "config", None)
    return [{"task": name, "benchmark": benchmark, "known": known_benchmarks(task),
             "scores": published_beside(task, benchmark, results, config)}]
