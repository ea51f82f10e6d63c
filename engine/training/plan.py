"""What a run will do, printed before it does it: the model's size, the data, the steps, the device."""

from __future__ import annotations

from typing import Any

import torch

from engine import console
from engine.callbacks import TrainerState
from engine.config.choice import ResolvedTask
from engine.config.resolve import flatten
from engine.data.augmentation import AugmentationSummary
from engine.data.split import Split
from engine.model.adapters import Adapter


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """``total`` and ``trainable`` weights (trainable: at any epoch of the freezing schedule, once
    ``trainable_at_any_epoch`` has run)."""
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def print_plan(resolved: ResolvedTask, accelerator: Any, state: TrainerState, splits: dict[str, Split],
               parameters: dict[str, int], adapter: Adapter | None) -> None:
    training, n = resolved.training, accelerator.num_processes
    total, trainable = parameters["total"], parameters["trainable"]
    data = describe_splits(splits)
    steps = describe_steps(training, state, streaming=splits["train"].streaming)
    console.info(
        "Plan\n"
        f"  model     {resolved.model.name}: {count(total)} parameters, {count(trainable)} trainable "
        f"({trainable / max(total, 1):.1%}); head {resolved.head.name}{describe_adapter(adapter)}\n"
        f"  data      {data}\n"
        f"{describe_augmentation(splits['train'].augmentation)}"
        f"  training  {steps}, {describe_batch(training, n)}\n"
        f"{describe_optimizer(resolved)}"
        f"  device    {describe_device(accelerator)}")


def describe_steps(training: Any, state: TrainerState, *, streaming: bool) -> str:
    """The plan's optimizer steps, per epoch and in all, and why the epochs are more than the task file's."""
    if streaming:
        return f"{state.max_steps:,} steps over the stream"
    floor = ""
    if not training.max_steps and state.epochs > training.epochs:  # the floor of steps raised the epochs
        floor = f", not {training.epochs}: training.min_steps is {training.min_steps:,}"
    return f"{state.max_steps:,} steps ({state.steps_per_epoch:,} per epoch, {state.epochs} epoch(s){floor})"


def describe_optimizer(resolved: ResolvedTask) -> str:
    """The optimizer's learning rates (encoder, head, layer-wise decay), where its options have them; a layer decay
    the task file does not write says it is the task's default, and where that came from."""
    optimizer = resolved.optimizer
    options, parts = optimizer.options, []
    for key, label in (("lr", "lr"), ("head_lr", "head")):
        if isinstance(getattr(options, key, None), (int, float)):
            parts.append(f"{label} {getattr(options, key):g}")
    decay = getattr(options, "layer_decay", None)
    if isinstance(decay, (int, float)):
        origin = ("" if "optimizer.layer_decay" in flatten(resolved.raw_as_written) else
                  f": the {resolved.task.name} task's default, from the defaults study (docs/benchmarks.md)")
        parts.append(f"each layer below the top at {decay:g} times the one above{origin}")
    return f"  optimizer {optimizer.name}" + (f": {', '.join(parts)}" if parts else "") + "\n"


def describe_batch(training: Any, processes: int) -> str:
    """The plan's batch: per process, processes, accumulation."""
    batch = f"batch {training.batch_size} x {processes} process(es)"
    if training.gradient_accumulation_steps > 1:
        batch += f" x {training.gradient_accumulation_steps} accumulated"
    return batch


def describe_device(accelerator: Any) -> str:
    """The plan's device line: the device, the precision, the threads (per process)."""
    precision = {"no": "fp32"}.get(str(accelerator.mixed_precision), str(accelerator.mixed_precision))
    return (f"{accelerator.device.type}, {precision}, {torch.get_num_threads()} thread(s)"
            + (" per process" if accelerator.num_processes > 1 else ""))


def describe_augmentation(summaries: list[AugmentationSummary]) -> str:
    """The plan's augmentation lines, one per augmentation in the order they ran ("" without any)."""
    lines = [f"  {'augment' if i == 0 else '':<9} {summary.line()}\n" for i, summary in enumerate(summaries)]
    return "".join(lines)


def describe_splits(splits: dict[str, Split]) -> str:
    """The plan's data line: each split's rows (or "streamed"), and the training rows before augmentation."""
    data = ", ".join(f"{name} {'streamed' if split.streaming else f'{len(split):,} rows'}"
                     for name, split in splits.items())
    augmented = splits["train"].augmentation if "train" in splits else []
    if augmented and not splits["train"].streaming:
        data = data.replace("train ", f"train {augmented[0].rows_in:,} rows, augmented to ", 1)
    return data


def describe_adapter(adapter: Adapter | None) -> str:
    """The plan's adapter line ("" without one)."""
    if adapter is None:
        return ""
    described = adapter.describe()
    targets = described["target_modules"]
    return (f"\n  adapter   {described['method']}"
            + (f" r {adapter.options.r}" if described["method"] != "ia3" else "")
            + f" on {', '.join(targets) if isinstance(targets, list) else targets}: "
            f"{count(described['parameters'])} weights; the pretrained ones stay frozen")


def count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n:,}"
