"""Mixed precision by hardware: what ``training.mixed_precision`` becomes on the device a run trains on.

- ``auto`` (the default): bf16 on a GPU that supports it (its speed and memory, with fp32's range), fp32 elsewhere.
- ``bf16`` on a CPU without native bf16 instructions (AVX2 only): refused. Autocast then emulates the 16-bit matrix
  products, and training runs many times slower than fp32 (bench/results/precision_cpu.md), a day lost for nothing.
- ``fp16`` on a CPU: refused for the same reason. Anything else: as asked.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError, ConfigIssue

# bench/results/precision_cpu.md, on an AMD EPYC with AVX2 only (2 CPUs): samples/s of MiniLM training
MEASURED = {"fp32": 58.0, "bf16": 3.0, "fp16": 2.4}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without oneDNN
        return False


def training_device() -> Any:
    """The kind of device Accelerate will train on (its choice among those torch sees), found without creating
    Accelerate's state, which must be created once, by the Accelerator, under a distributed launch."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(setting: str, device: Any, source: Any = None) -> str:
    """Accelerate's ``mixed_precision`` for ``setting`` on ``device`` (a torch.device), or a ConfigError that says
    why not and what to use instead."""
    import torch

    if setting == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "no"
    if device.type == "cpu" and setting in ("bf16", "fp16") and not (setting == "bf16" and cpu_has_native_bf16()):
        fp32, slow = MEASURED["fp32"], MEASURED[setting]
        why = ("this CPU has no native bf16 instructions (AVX512-BF16 or AMX)" if setting == "bf16"
               else "CPUs have no fast fp16 training path")
        raise ConfigError([ConfigIssue(
            "training.mixed_precision",
            f"{setting!r} on this CPU would train about {fp32 / slow:.0f}x slower than fp32: {why}, so autocast "
            f"emulates the 16-bit products (measured with MiniLM: {slow} vs {fp32} samples/s, "
            "bench/results/precision_cpu.md). Use 'auto' (fp32 on a CPU, bf16 on a GPU that has it) or 'no'")], source)
    return setting
