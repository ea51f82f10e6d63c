"""``engine.train``: a run from Python, on the path `engine run` takes (read the task file, apply the overrides, load
the plugins, resolve, run), with its checks, its messages and its run directory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.api.tasks import Overrides, resolve_task
from engine.training.recipe import RunResult, run

__all__ = ["RunResult", "resolve_task", "train"]


def train(task: str | os.PathLike[str] | Mapping[str, Any], overrides: Overrides = None,
          output_dir: str | os.PathLike[str] | None = None, *, overwrite: bool = False, resume: bool = False,
          callbacks: Sequence[Any] = (), plugins: str | Iterable[str] | None = None,
          block_plugins: str | Iterable[str] = ()) -> RunResult:
    """Train, evaluate and save a run as `engine run` does; returns its directory and metrics.

    ``task``: a task file's path, or the task file's content as a dict (its relative paths are then relative to the
    current directory). ``overrides``: ``{"training.epochs": 1}``, or ``["training.epochs=1"]`` as ``--set`` takes
    them. ``output_dir``: the run directory instead of the task's ``output_dir`` (relative to the current
    directory). ``overwrite``, ``resume``: as ``--overwrite`` and ``--resume``; ``callbacks``: ``engine.Callback``
    objects, besides the task file's; ``plugins``, ``block_plugins``: as ``--plugins`` and ``--block-plugins``.
    A task file, data or run directory that is not right raises an ``engine.EngineError`` with the message
    `engine run` prints.
    """
    resolved, manager = resolve_task(task, overrides, output_dir, plugins=plugins, block_plugins=block_plugins)
    result = run(resolved, manager, overwrite=overwrite, resume=resume, callbacks=callbacks)
    assert result is not None  # only a dry run returns none
    return result
