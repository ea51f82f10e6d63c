"""A test plugin, not built in, with a component for every hook the example plugin (engine_ordinal) leaves out:
a data format, an augmentation, a freezing strategy, an optimizer, a schedule, a callback and a metric.

Each records what the run did with it in ``SEEN``, so tests can check the engine called it as the hook promises.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine import LINE, Callback, DataError, DataOptions, Split, hookimpl
from engine.data.split import resolve_path

SEEN: dict[str, list[Any]] = defaultdict(list)


class PipeOptions(DataOptions):
    pass


def read_pipe(options: PipeOptions, base_dir: Path) -> dict[str, Split]:
    """Lines of LABEL|TEXT."""
    splits = {}
    for split, file in options.files().items():
        path = resolve_path(file, base_dir)
        rows = []
        for number, line in enumerate(path.read_text(encoding=options.encoding).splitlines(), start=1):
            label, sep, text = line.partition("|")
            if not sep:
                raise DataError("expected LABEL|TEXT", path, number)
            rows.append({LINE: number, "text": text, "label": label})
        splits[split] = Split(split, rows, str(path))
        SEEN["load_data"].append((split, len(rows)))
    return splits


def shout_copy(options: None) -> Any:
    """Add an upper-cased copy of every row."""

    def apply(rows: list[dict[str, Any]], rng: Any) -> list[dict[str, Any]]:
        SEEN["augment"].append(len(rows))
        return rows + [{**row, "text": row["text"].upper()} for row in rows]

    return apply


class WarmHead:
    def apply(self, model: Any, epoch: int) -> None:
        for parameter in model.backbone.parameters():
            parameter.requires_grad = epoch >= 1
        SEEN["freeze"].append((epoch, any(p.requires_grad for p in model.backbone.parameters())))


def warm_head(options: None) -> WarmHead:
    """The head alone in the first epoch."""
    return WarmHead()


class SgdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(0.05, gt=0)


def plain_sgd(options: SgdOptions, model: Any) -> Any:
    """SGD over every parameter."""
    import torch

    SEEN["optimizer"].append(type(model).__name__)
    return torch.optim.SGD(model.parameters(), lr=options.lr)


class HalvingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(2, ge=1)


def halving(options: HalvingOptions, optimizer: Any, num_training_steps: int) -> Any:
    """Halve the learning rate every few steps."""
    import torch

    SEEN["scheduler"].append(num_training_steps)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=options.every, gamma=0.5)


class EventLog(Callback):
    """Record every event, and the learning rate at each step."""

    def __init__(self, options: None) -> None:
        pass

    def on_train_begin(self, state: Any) -> None:
        SEEN["callback"].append("on_train_begin")

    def on_epoch_begin(self, state: Any) -> None:
        SEEN["callback"].append("on_epoch_begin")

    def on_step_end(self, state: Any, logs: dict[str, float]) -> None:
        SEEN["callback"].append("on_step_end")
        SEEN["lr"].append(logs["lr"])

    def on_evaluate(self, state: Any, metrics: dict[str, float]) -> None:
        SEEN["callback"].append("on_evaluate")

    def on_epoch_end(self, state: Any) -> None:
        SEEN["callback"].append("on_epoch_end")

    def on_train_end(self, state: Any) -> None:
        SEEN["callback"].append("on_train_end")


def row_count(options: None, task: Any) -> Any:
    """How many rows were predicted."""

    def compute(predictions: list[Any], references: list[Any]) -> dict[str, float]:
        SEEN["metric"].append(len(predictions))
        return {"row_count": float(len(predictions))}

    return compute


@hookimpl
def load_data(register: Any) -> None:
    register("pipe", read_pipe, options=PipeOptions)


@hookimpl
def augment(register: Any) -> None:
    register("shout_copy", shout_copy)


@hookimpl
def freeze(register: Any) -> None:
    register("warm_head", warm_head)


@hookimpl
def optimizer(register: Any) -> None:
    register("plain_sgd", plain_sgd, options=SgdOptions)


@hookimpl
def scheduler(register: Any) -> None:
    register("halving", halving, options=HalvingOptions)


@hookimpl
def callback(register: Any) -> None:
    register("event_log", EventLog)


@hookimpl
def metric(register: Any) -> None:
    register("row_count", row_count)
