"""Several tasks in one task file (``"tasks": {NAME: {task, data, head, metrics, augment, weight}}``): each task's
own task file made from the shared sections and its own, the sampler that draws the task of each batch, the
combined monitor, and issues' paths put back where the file has them (``tasks.NAME.data.train``).

``engine.config.resolve.resolve`` resolves each task's file as it resolves a one-task file; this module knows the
shape of the ``tasks`` section and nothing of resolving.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from pydantic import Field, ValidationError

from engine.config.choice import pydantic_issues
from engine.config.sections import ConfigSection
from engine.errors import ConfigIssue

#: The sections that belong to each task; the others (model, freeze, adapter, optimizer, scheduler, training,
#: callbacks, output_dir, plugins) are shared.
TASK_KEYS = ("task", "data", "head", "metrics", "augment")
#: The combined monitor: the mean over the tasks of each task's default monitor, made higher-is-better.
COMBINED = "validation.combined"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class SamplerConfig(ConfigSection):
    """Which task the next batch comes from: ``proportional`` to the tasks' batches, ``uniform``, or
    ``temperature`` (batches^(1/T))."""

    name: Literal["proportional", "uniform", "temperature"] = "proportional"
    T: float = Field(2.0, gt=0, description="temperature: the exponent's divisor (1: proportional; large: uniform).")


class TaskEntry(ConfigSection):
    """One task of a multi-task file: its component sections (validated by their plugins) and its loss weight."""

    task: Any = None
    data: Any = None
    head: Any = None
    metrics: list[Any] | None = None
    augment: list[Any] = Field(default_factory=list)
    weight: float = Field(1.0, gt=0, description="The task's loss is multiplied by it.")


def sampler_of(training: Any, issues: list[ConfigIssue]) -> SamplerConfig:
    """``training.sampler``: a name or ``{"name": ..., "T": ...}``."""
    value = training.get("sampler", "proportional") if isinstance(training, dict) else "proportional"
    try:
        return SamplerConfig.model_validate({"name": value} if isinstance(value, str) else value)
    except ValidationError as exc:
        issues.extend(pydantic_issues(exc, "training.sampler", SamplerConfig))
        return SamplerConfig()


def task_entries(raw: dict[str, Any], issues: list[ConfigIssue]) -> dict[str, TaskEntry]:
    """The ``tasks`` section checked: names that make folder and metric names, each entry's shape."""
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        issues.append(ConfigIssue("tasks", "expected an object of NAME: {task, data, ...}, with at least one task"))
        return {}
    for key in TASK_KEYS:
        if key in raw:
            issues.append(ConfigIssue(key, f"with 'tasks', each task has its own {key!r}: move it into "
                                      f"tasks.NAME.{key}"))
    if "search" in raw:
        issues.append(ConfigIssue("search", "engine tune does not search multi-task files yet"))
    entries = {}
    for name, value in tasks.items():
        if not NAME.match(name):
            issues.append(ConfigIssue(f"tasks.{name}", "a task's name starts with a letter and has only letters, "
                                      "digits, '_' and '-' (it names metrics and folders)"))
            continue
        try:
            entries[name] = TaskEntry.model_validate(value)
        except ValidationError as exc:
            issues.extend(pydantic_issues(exc, f"tasks.{name}", TaskEntry))
            continue
        for key in ("task", "data"):
            if getattr(entries[name], key) is None:
                issues.append(ConfigIssue(f"tasks.{name}.{key}", "missing"))
    return entries


def task_raw(raw: dict[str, Any], name: str, monitor: str | None) -> dict[str, Any]:
    """Task NAME's own task file: the shared sections and its own; no callbacks (the run's, resolved once), no
    sampler; ``training.monitor`` the task's part of a ``validation.NAME.METRIC`` monitor, else the task's default."""
    own = {k: copy.deepcopy(v) for k, v in raw["tasks"][name].items() if k != "weight"}
    shared = {k: copy.deepcopy(v) for k, v in raw.items() if k not in ("tasks", "callbacks", "search")}
    training = dict(shared.get("training") or {}) if isinstance(shared.get("training"), dict) else {}
    training.pop("sampler", None)
    mode = training.pop("mode", None)
    training.pop("monitor", None)
    if monitor is not None:
        training["monitor"] = monitor
        if mode is not None:
            training["mode"] = mode
    if "training" in shared or training:
        shared["training"] = training
    return {**shared, **own}


def monitor_parts(monitor: Any, names: list[str], issues: list[ConfigIssue]) -> tuple[str | None, str | None]:
    """``training.monitor`` of a multi-task file: None or ``validation.combined`` (the combined monitor), else
    ``validation.NAME.METRIC``: (NAME, ``validation.METRIC``)."""
    if monitor is None or monitor == COMBINED:
        return None, None
    parts = str(monitor).split(".")
    if len(parts) != 3 or parts[0] != "validation" or parts[1] not in names:
        issues.append(ConfigIssue("training.monitor", f"expected 'validation.NAME.METRIC' with NAME one of "
                                  f"{', '.join(names)}, or {COMBINED!r} (the mean of each task's default monitor); "
                                  f"got {monitor!r}"))
        return None, None
    return parts[1], f"validation.{parts[2]}"


def in_task(issue: ConfigIssue, name: str) -> ConfigIssue:
    """A task's issue at its path in the multi-task file: its own sections under ``tasks.NAME``."""
    if issue.path.split(".")[0] in TASK_KEYS:
        return ConfigIssue(f"tasks.{name}.{issue.path}", issue.message)
    if issue.path == "training.monitor" and "monitor" in issue.message:
        return ConfigIssue("training.monitor", f"task {name!r}: {issue.message}")
    return issue


def callback_monitor_issues(callbacks: list[Any], directions: dict[str, str]) -> list[ConfigIssue]:
    """A callback's monitor must be one the multi-task run computes: ``validation.combined`` or
    ``validation.NAME.METRIC``."""
    issues = []
    for i, choice in enumerate(callbacks):
        monitor = getattr(choice.options, "monitor", None)
        if isinstance(monitor, str) and monitor not in directions:
            issues.append(ConfigIssue(f"callbacks.{i}.monitor", f"{monitor!r} is not monitored in a multi-task run; "
                                      f"expected one of: {', '.join(sorted(directions))}"))
    return issues


def sampler_dict(sampler: SamplerConfig) -> Any:
    """How task.json records the sampler: its name, or ``{"name": "temperature", "T": ...}``."""
    return sampler.model_dump() if sampler.name == "temperature" else sampler.name

def of_task(values: dict[str, Any], name: str) -> dict[str, Any]:
    """One task's part of a multi-task run's ``NAME.KEY`` entries (metrics, data files), ``NAME.`` taken off."""
    prefix = f"{name}."
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
