"""The paths only a CUDA device takes: autocast in bf16, fused AdamW on CUDA, the first-token layer under CUDA sdpa,
CUDA random states in checkpoints, predict and evaluate on CUDA against the CPU, the Python API on CUDA.

Every test in this folder is marked ``gpu`` and, where torch sees no CUDA device, skipped with ``REASON``: the CPU
suite collects them and runs none. ``bash bench/gpu_check.sh`` runs them on a GPU machine (docs/scaling.md,
"Checking on a GPU").

Commands run in-process (``engine_cli``) with Accelerate's process-wide state reset around each: Accelerate keeps the
first ``Accelerator``'s precision and device for the life of the process, so without the reset an ``engine predict``
after a bf16 run would predict under bf16 autocast, and a fp32 run after a bf16 one would be refused.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REASON = "no CUDA device (torch.cuda.is_available() is False); bench/gpu_check.sh runs these on a GPU"

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m gpu` selects by the marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = torch.cuda.is_available()
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if not cuda:
                item.add_marker(pytest.mark.skip(reason=REASON))


def release_accelerate() -> None:
    """Forget Accelerate's process-wide state and free the CUDA memory nothing holds any more."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@pytest.fixture(autouse=True)
def fresh_accelerate() -> Iterator[None]:
    """Each test starts and ends with no Accelerate state and no CUDA memory held."""
    release_accelerate()
    yield
    release_accelerate()


@pytest.fixture
def engine_cli(run_engine: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``run_engine`` with Accelerate's state fresh for each command; ``cpu=True`` runs it on the CPU, as
    ``CUDA_VISIBLE_DEVICES=`` would in a new process (which cannot be had in this one once CUDA is up)."""

    def run(*args: Any, cpu: bool = False) -> Any:
        release_accelerate()
        with monkeypatch.context() as patch:
            if cpu:
                from accelerate.state import PartialState

                patch.setenv("ACCELERATE_USE_CPU", "1")
                PartialState(cpu=True)  # the device every later Accelerator of this command takes
            try:
                return run_engine(*args)
            finally:
                release_accelerate()

    return run


def close_outputs(cpu: Any, cuda: Any, tolerance: float, where: str = "") -> None:
    """The same JSON value, numbers within ``tolerance`` (absolute), everything else equal."""
    if isinstance(cpu, (bool, str)) or cpu is None:
        assert cuda == cpu, where
    elif isinstance(cpu, (int, float)):
        assert isinstance(cuda, (int, float)) and math.isfinite(cuda), where
        assert abs(cuda - cpu) <= tolerance, f"{where}: cuda {cuda} vs cpu {cpu}"
    elif isinstance(cpu, list):
        assert isinstance(cuda, list) and len(cuda) == len(cpu), where
        for i, (a, b) in enumerate(zip(cpu, cuda)):
            close_outputs(a, b, tolerance, f"{where}[{i}]")
    elif isinstance(cpu, dict):
        assert isinstance(cuda, dict) and cuda.keys() == cpu.keys(), where
        for key in cpu:
            close_outputs(cpu[key], cuda[key], tolerance, f"{where}.{key}")
    else:
        raise TypeError(f"{where}: {type(cpu).__name__}")


@pytest.fixture
def assert_close_outputs() -> Callable[..., None]:
    """``assert_close_outputs(cpu, cuda, tolerance)``: two JSON values (predictions, metrics) the same, numbers
    within ``tolerance`` (absolute)."""
    return close_outputs
