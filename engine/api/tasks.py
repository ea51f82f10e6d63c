"""A task checked and resolved from Python or the command line (read the task file, apply the overrides, load the
plugins it names, resolve): the one path `engine run`, `engine validate` and ``engine.train`` take. Imports no
torch, so that `engine validate` stays quick."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.api.plugins import plugin_manager
from engine.config.choice import ResolvedTask
from engine.config.resolve import apply_overrides, read_task_file, resolve
from engine.errors import ConfigError, ConfigIssue
from engine.plugins.manager import PluginManager

__all__ = ["Overrides", "override_items", "resolve_task"]

Overrides = Mapping[str, Any] | Sequence[str] | None


def resolve_task(task: str | os.PathLike[str] | Mapping[str, Any], overrides: Overrides = None,
                 output_dir: str | os.PathLike[str] | None = None, *, plugins: str | Iterable[str] | None = None,
                 block_plugins: str | Iterable[str] = ()) -> tuple[ResolvedTask, PluginManager]:
    """The task checked and resolved, and the plugins it loaded (the installed ones and those the task names)."""
    if isinstance(task, Mapping):
        raw, source, base_dir = dict(task), None, Path.cwd()
    elif isinstance(task, (str, os.PathLike)):
        source = Path(task)
        raw, base_dir = read_task_file(source), source.resolve().parent
    else:
        raise ConfigError([ConfigIssue("", f"expected a task file's path or a task as a dict, got "
                                           f"{type(task).__name__}")])
    raw = apply_overrides(raw, override_items(overrides))
    if output_dir is not None:
        raw["output_dir"] = str(Path(output_dir).resolve())
    modules = raw.get("plugins", [])
    manager = plugin_manager(modules if isinstance(modules, list) else [], base_dir, only=plugins, block=block_plugins)
    resolved = resolve(raw, manager.registry(), source=source, base_dir=base_dir, failure_note=manager.failure_note())
    return resolved, manager


def override_items(overrides: Overrides) -> list[str]:
    """Overrides as ``--set`` takes them (``KEY=VALUE``, the value JSON): a mapping's values are written as JSON."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value, default=str)}" for key, value in overrides.items()]
    return [str(item) for item in overrides]
