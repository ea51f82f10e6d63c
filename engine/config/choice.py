"""A component section resolved: the component a task file names and its options, validated by the plugin's model,
with every problem collected as a ConfigIssue at its JSON path; and the whole task file resolved (``ResolvedTask``).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.config.sections import AdapterConfig, ModelConfig, SearchConfig, TrainingConfig
from engine.errors import ConfigIssue, did_you_mean
from engine.registry import KINDS, Component, Registry


@dataclass
class Choice:
    """A resolved component section: the component and its validated options."""

    component: Component
    options: BaseModel | None
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return self.component.name

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.component.build(self.options, *args, **kwargs)

    @property
    def filled(self) -> dict[str, Any]:
        """The section as written, with every option's default filled in (how task.json records it)."""
        if self.options is None:
            return dict(self.raw)
        defaults = self.options.model_dump(mode="json")
        return {**self.raw, **{k: v for k, v in defaults.items() if k not in self.raw}}


@dataclass
class ResolvedTask:
    """A validated task file: the core's sections, the chosen components, where it came from."""

    source: Path | None
    base_dir: Path
    raw: dict[str, Any]
    task: Choice
    task_object: Any
    model: ModelConfig
    data: Choice
    augment: list[Choice]
    head: Choice
    freeze: Choice
    optimizer: Choice
    scheduler: Choice
    training: TrainingConfig
    metrics: list[Choice]
    callbacks: list[Choice]
    output_dir: Path
    plugins: list[str] = field(default_factory=list)
    #: Whether each monitored value (``training.monitor``, callbacks' monitors) improves up ("max") or down ("min").
    directions: dict[str, str] = field(default_factory=dict)
    #: The ``adapter`` section (peft), or None: the encoder trains as the freezing strategy says.
    adapter: AdapterConfig | None = None
    #: The ``search`` section, for ``engine tune`` (``engine run`` trains the file as written and ignores it).
    search: SearchConfig | None = None
    #: The task file as written (with --set applied), before the task's defaults: what a search trial starts from.
    raw_as_written: dict[str, Any] = field(default_factory=dict)
    #: A multi-task file (``tasks``): each task resolved as a task file of its own, in the file's order (None: one
    #: task, this one). The sections above are then the first task's and the shared ones (docs/multitask.md).
    tasks: dict[str, ResolvedTask] | None = None
    #: Each task's loss weight (a multi-task file).
    weights: dict[str, float] = field(default_factory=dict)
    #: ``training.sampler`` as task.json records it (a multi-task file).
    sampler: Any = None

    @property
    def monitor(self) -> str:
        """The value that picks the best model: ``training.monitor``, else the task's own (e.g.
        'validation.accuracy'; with several tasks, 'validation.combined'). Its direction is ``directions[monitor]``
        when the run has a validation split."""
        if self.tasks is not None:
            return self.training.monitor or "validation.combined"
        return self.training.effective_monitor(self.task_object)

    def to_dict(self) -> dict[str, Any]:
        """The task file as run: every default filled in, loadable by ``engine run`` again."""
        if self.tasks is not None:
            return self.multitask_dict(self.tasks)
        return {
            "task": self.task.filled,
            "model": self.model.model_dump(),
            "data": self.data.filled,
            "augment": [c.filled for c in self.augment],
            "head": self.head.filled,
            "freeze": self.freeze.filled,
            "adapter": self.adapter.model_dump() if self.adapter else None,
            "optimizer": self.optimizer.filled,
            "scheduler": self.scheduler.filled,
            "training": self.training.model_dump(),
            "metrics": [c.filled for c in self.metrics],
            "callbacks": [c.filled for c in self.callbacks],
            "output_dir": str(self.output_dir),
            "plugins": self.plugins,
            **({"search": self.search.model_dump(mode="json", by_alias=True, exclude_none=True)}
               if self.search else {}),
        }

    def multitask_dict(self, tasks: dict[str, ResolvedTask]) -> dict[str, Any]:
        """A multi-task file as run: each task's own sections under ``tasks``, the shared ones once."""
        one = self.to_dict_of_one()
        shared = {k: v for k, v in one.items() if k not in ("task", "data", "augment", "head", "metrics")}
        own = {name: {"task": t.task.filled, "data": t.data.filled, "augment": [c.filled for c in t.augment],
                      "head": t.head.filled, "metrics": [c.filled for c in t.metrics], "weight": self.weights[name]}
               for name, t in tasks.items()}
        return {"tasks": own, **shared, "training": {**one["training"], "sampler": self.sampler}}

    def to_dict_of_one(self) -> dict[str, Any]:
        """``to_dict`` as if this were a one-task file."""
        return ResolvedTask.to_dict(dataclasses.replace(self, tasks=None))


def pydantic_issues(error: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> list[ConfigIssue]:
    """Turn pydantic's errors into issues with JSON paths, the value that came, and 'did you mean'."""
    issues = []
    for err in error.errors():
        path = ".".join([prefix, *map(str, err["loc"])]).strip(".")
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            fields = _fields_at(model, err["loc"][:-1]) if model else []
            allowed = f"; allowed keys: {', '.join(fields)}" if fields else ""
            issues.append(ConfigIssue(path, f"unknown key{did_you_mean(key, fields)}{allowed}"))
            continue
        got = err.get("input")
        came = "" if err["type"] == "missing" else f"; got {json.dumps(got) if _jsonable(got) else repr(got)}"
        issues.append(ConfigIssue(path, f"{err['msg'][0].lower()}{err['msg'][1:]}{came}"))
    return issues


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if model is None:
            return []
        info = model.model_fields.get(str(part))
        annotation = getattr(info, "annotation", None)
        candidates = [annotation, *typing.get_args(annotation)]  # a section that may be null: `X | None`
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model else []


def resolve_choice(
    registry: Registry, hook: str, value: Any, path: str, issues: list[ConfigIssue], key: str = "name",
    note: str = "", base_dir: Path | None = None,
) -> Choice | None:
    """Validate one component section: ``"name"`` or ``{"name": ..., **options}``. The options' validators see
    ``info.context["base_dir"]``, the task file's folder (or None), to read relative paths from."""
    if isinstance(value, str):
        value = {key: value}
    if not isinstance(value, dict):
        issues.append(ConfigIssue(path, f"expected a {KINDS[hook]} name or an object with {key!r}, "
                                        f"got {json.dumps(value)}"))
        return None
    name = value.get(key)
    if name is None:
        issues.append(ConfigIssue(f"{path}.{key}",
                                  f"missing: which {KINDS[hook]}? one of: {', '.join(registry.names(hook))}"))
        return None
    component = registry.find(hook, name) if isinstance(name, str) else None
    if component is None:
        issue = registry.unknown(hook, name, f"{path}.{key}")
        issues.append(ConfigIssue(issue.path, issue.message + note))
        return None
    options_raw = {k: v for k, v in value.items() if k != key}
    options = None
    if component.options is not None:
        try:
            options = component.options.model_validate(options_raw, context={"base_dir": base_dir})
        except ValidationError as exc:
            issues.extend(pydantic_issues(exc, path, component.options))
            return None
    elif options_raw:
        issues.append(ConfigIssue(path, f"{KINDS[hook]} {name!r} takes no options, got {', '.join(options_raw)}"))
        return None
    return Choice(component, options, value)
