"""Optimizers (AdamW, SGD) with the usual parameter groups, and learning-rate schedules."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine import Register, hookimpl

#: The layer-wise decay the sentence-level tasks (classification, regression) default to. The defaults study
#: (bench/defaults.py, docs/benchmarks.md) found it better than one rate on SST-2, the sentiment sentences and STS-B
#: at 10% of their data, even on TREC and SMS spam, and worse on CoNLL-2003: so the tagging task keeps one rate.
SENTENCE_LAYER_DECAY = 0.9


class AdamWOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-4, gt=0, description="Learning rate of the encoder. 1e-4 suits small encoders such as the "
                      "default MiniLM; base-size models usually want 2e-5 to 5e-5.")
    head_lr: float | None = Field(
        None, gt=0, description="Learning rate of the head (and a CRF's transitions); default: lr.")
    weight_decay: float = Field(0.01, ge=0, description="Applied to weight matrices only, never to biases or norms.")
    layer_decay: float | None = Field(
        None, gt=0, le=1, description="Layer-wise decay: each encoder layer below the top gets lr times this, once "
        "more per layer, the embeddings once more; null: one rate for the whole encoder. The classification and "
        "regression tasks default to 0.9 (on the 6-layer default MiniLM, the embeddings at half the rate): the "
        "defaults study, docs/benchmarks.md.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam's decay rates of the moment estimates.")
    eps: float = Field(1e-8, gt=0, description="Added to the denominator, for numerical stability.")
    fused: bool | None = Field(None, description="One fused kernel for the whole update (about 7x faster than "
                               "torch's per-tensor loop on a CPU: bench/optimizer_step.py); default: fused where "
                               "torch has the kernel (CPU, CUDA), else torch's own choice.")


class SgdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-2, gt=0, description="Learning rate of the encoder.")
    head_lr: float | None = Field(None, gt=0, description="Learning rate of the head; default: lr.")
    weight_decay: float = Field(0.0, ge=0, description="Applied to weight matrices only, never to biases or norms.")
    layer_decay: float | None = Field(None, gt=0, le=1, description="Layer-wise decay, as adamw's.")
    momentum: float = Field(0.9, ge=0, description="Momentum factor.")
    fused: bool | None = Field(None, description="As adamw's.")


def layer_index(name: str) -> int | None:
    """The encoder layer a parameter's name puts it in (``encoder.layer.3.attention...``: 3), or None."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("layer", "layers", "h", "block") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def layer_of(name: str, num_layers: int) -> int:
    """0 for embeddings, i+1 for encoder layer i, num_layers+1 for anything above (pooler)."""
    if "embeddings" in name:
        return 0
    index = layer_index(name)
    return num_layers + 1 if index is None else index + 1


def parameter_groups(model: Any, options: Any) -> list[dict[str, Any]]:
    """Decay only on tensors of two or more dimensions (as nanoGPT) that the head does not exempt through a
    ``no_weight_decay()`` method (names relative to the head, as timm does); the head at ``head_lr``; optional
    layer decay."""
    names = [name for name, _ in model.backbone.named_parameters()]
    # The config's count, else the layers the names show (an encoder whose config calls it otherwise).
    num_layers = int(getattr(getattr(model.backbone, "config", None), "num_hidden_layers", 0) or 0) or 1 + max(
        (i for i in map(layer_index, names) if i is not None), default=-1)
    exempt = set(model.head.no_weight_decay()) if hasattr(model.head, "no_weight_decay") else set()
    groups: dict[tuple[float, float], list[Any]] = {}
    for part, module in (("backbone", model.backbone), ("head", model.head)):
        for name, param in module.named_parameters():
            if part == "head":
                lr = options.head_lr or options.lr
            else:
                depth = max(0, num_layers + 1 - layer_of(name, num_layers))
                lr = options.lr * (options.layer_decay ** depth if options.layer_decay else 1.0)
            decay = options.weight_decay if param.ndim >= 2 and not (part == "head" and name in exempt) else 0.0
            groups.setdefault((lr, decay), []).append(param)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


FUSED_DEVICES = ("cpu", "cuda")  # where torch (>= 2.4) has fused AdamW and SGD kernels


def fused(setting: bool | None, groups: list[dict[str, Any]]) -> bool | None:
    """The ``fused`` argument: the setting, else True where every parameter is a float on a device with the kernel.

    The device is where training runs (Accelerate's), not where the parameters are while the model is built.
    """
    if setting is not None:
        return setting
    from accelerate import PartialState

    device = PartialState().device.type
    floats = all(p.is_floating_point() for group in groups for p in group["params"])
    return True if device in FUSED_DEVICES and floats else None


def build_adamw(options: AdamWOptions, model: Any) -> Any:
    """AdamW with decoupled weight decay."""
    import torch

    groups = parameter_groups(model, options)
    return torch.optim.AdamW(groups, lr=options.lr, betas=options.betas, eps=options.eps,
                             fused=fused(options.fused, groups))


def build_sgd(options: SgdOptions, model: Any) -> Any:
    """SGD with momentum."""
    import torch

    groups = parameter_groups(model, options)
    return torch.optim.SGD(groups, lr=options.lr, momentum=options.momentum, fused=fused(options.fused, groups))


class ScheduleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of the steps spent warming up linearly from 0.")
    warmup_steps: int | None = Field(None, ge=0, description="Warm-up in steps; overrides warmup_ratio.")


def _schedule(shape: Literal["linear", "cosine", "constant"]) -> Any:
    def build(options: ScheduleOptions, optimizer: Any, num_training_steps: int) -> Any:
        import torch

        warmup = (options.warmup_steps if options.warmup_steps is not None
                  else int(options.warmup_ratio * num_training_steps))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if shape == "constant":
                return 1.0
            progress = (step - warmup) / max(1, num_training_steps - warmup)
            if shape == "linear":
                return max(0.0, 1.0 - progress)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    build.__doc__ = {"linear": "Linear warm-up, then linear decay to zero.",
                     "cosine": "Linear warm-up, then cosine decay to zero.",
                     "constant": "Linear warm-up, then a constant rate."}[shape]
    return build


@hookimpl
def optimizer(register: Register) -> None:
    register("adamw", build_adamw, options=AdamWOptions)
    register("sgd", build_sgd, options=SgdOptions)


@hookimpl
def scheduler(register: Register) -> None:
    for shape in ("linear", "cosine", "constant"):
        register(shape, _schedule(shape), options=ScheduleOptions)
