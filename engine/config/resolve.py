"""task.json: reading, overriding, validating against the core's sections and the plugins' option models.

Every problem is collected and reported together, each with its JSON path, what was expected and what came.
A component section (``task``, ``data``, ``head``, ...) is a name or an object whose ``name`` (``format`` for
``data``) picks the component and whose other keys are that component's options.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.config.checks import check_monitors
from engine.config.choice import Choice, ResolvedTask, pydantic_issues, resolve_choice
from engine.config.multitask import (
    COMBINED,
    callback_monitor_issues,
    in_task,
    monitor_parts,
    sampler_dict,
    sampler_of,
    task_entries,
    task_raw,
)
from engine.config.sections import LIST_SECTIONS, SearchConfig, TaskFile
from engine.errors import ConfigError, ConfigIssue
from engine.registry import Component, Registry


def read_task_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "task file not found")], path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read the task file: {exc}")], path) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        issue = ConfigIssue("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        raise ConfigError([issue], path) from None
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("", f"expected a JSON object at the top, got {type(raw).__name__}")], path)
    return raw


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested task file as the dotted keys ``--set`` takes (``training.epochs``) and their values; a list
    counts as one value."""
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b=value`` overrides; the value is JSON when it parses as JSON, else a string."""
    raw = copy.deepcopy(raw)
    issues = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            issues.append(ConfigIssue(key, f"--set expects KEY=VALUE such as training.epochs=1, got {item!r}"))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node: Any = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, dict):
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = {"name": node[part]} if isinstance(node.get(part), str) else {}
                node = node[part]
            else:
                issues.append(ConfigIssue(".".join(parts[: i + 1]), f"cannot set {key!r}: not an object"))
                break
        else:
            last = parts[-1]
            if isinstance(node, list) and last.isdigit() and int(last) < len(node):
                node[int(last)] = value
            elif isinstance(node, dict):
                node[last] = value
            else:
                issues.append(ConfigIssue(key, f"cannot set {key!r}: not an object"))
    if issues:
        raise ConfigError(issues)
    return raw


# --- validating --------------------------------------------------------------------------------------------------


def _merge(defaults: Any, user: Any) -> Any:
    """The user's value over a task's default; objects merge key by key when they name the same component."""
    if user is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, dict) and isinstance(user, dict):
        if "name" in defaults and "name" in user and defaults["name"] != user["name"]:
            return user
        merged = copy.deepcopy(defaults)
        merged.update(user)
        return merged
    if isinstance(defaults, dict) and isinstance(user, str) and defaults.get("name") == user:
        return copy.deepcopy(defaults)
    return user


def resolve(raw: dict[str, Any], registry: Registry, source: Path | None = None, base_dir: Path | None = None,
            failure_note: str = "", *, one_of_tasks: bool = False) -> ResolvedTask:
    """Validate a task file (already read and overridden) against the core's sections and the components.
    ``one_of_tasks``: a task of a multi-task file (a stream of it is counted, so the run needs no max_steps)."""
    base_dir = base_dir or (source.parent if source else Path.cwd())
    if "tasks" in raw:
        return resolve_tasks(raw, registry, source, base_dir, failure_note)
    issues: list[ConfigIssue] = []
    task_choice = (resolve_choice(registry, "task", raw.get("task"), "task", issues, note=failure_note)
                   if "task" in raw else None)
    if "task" not in raw:
        issues.append(ConfigIssue("task", f"missing: which task? one of: {', '.join(registry.names('task'))}"))
    task_object = task_choice.build() if task_choice else None
    merged = _with_task_defaults(raw, dict(getattr(task_object, "defaults", {}) or {}))
    try:
        shape: TaskFile | None = TaskFile.model_validate(merged)
    except ValidationError as exc:
        issues.extend(i for i in pydantic_issues(exc, "", TaskFile) if i.path != "task" or "task" in merged)
        shape = None
    found = _resolve_components(merged, raw, shape, registry, task_choice, task_object, issues, failure_note, base_dir)
    directions: dict[str, str] = {}
    if shape is not None and task_object is not None and not issues:
        directions = check_monitors(shape.training, found.callbacks, found.metrics, task_object, found.data, issues)
    streaming = found.data is not None and getattr(found.data.options, "streaming", False)
    if streaming and shape and not shape.training.max_steps and not one_of_tasks:
        issues.append(ConfigIssue("training.max_steps", "missing: a streamed training split (data.streaming) has no "
                                  "known length, so the run needs a number of steps"))
    if shape is not None and shape.search is not None and not issues:
        issues.extend(check_search(shape.search, raw, registry, source, base_dir))
    if issues:
        raise ConfigError(issues, source)
    assert shape and task_choice and found.data and found.head and found.freeze and found.optimizer \
        and found.scheduler
    output_dir = Path(shape.output_dir) if shape.output_dir else Path("runs") / (source.stem if source else "run")
    if not output_dir.is_absolute():
        output_dir = base_dir / output_dir
    return ResolvedTask(
        source=source, base_dir=base_dir, raw=merged, task=task_choice, task_object=task_object, model=shape.model,
        data=found.data, augment=found.augment, head=found.head, freeze=found.freeze, optimizer=found.optimizer,
        scheduler=found.scheduler, training=shape.training, metrics=found.metrics, callbacks=found.callbacks,
        output_dir=output_dir, plugins=shape.plugins, directions=directions, adapter=shape.adapter,
        search=shape.search, raw_as_written=raw,
    )


def resolve_tasks(raw: dict[str, Any], registry: Registry, source: Path | None, base_dir: Path,
                  failure_note: str = "") -> ResolvedTask:
    """A multi-task file (``tasks``): each task resolved as a task file of the shared sections and its own, its
    issues at their paths in this file; the run's callbacks and monitor resolved once (docs/multitask.md)."""
    issues: list[ConfigIssue] = []
    entries = task_entries(raw, issues)
    sampler = sampler_of(raw.get("training"), issues)
    monitored, monitor = monitor_parts((raw.get("training") or {}).get("monitor")
                                       if isinstance(raw.get("training"), dict) else None, list(entries), issues)
    tasks: dict[str, ResolvedTask] = {}
    for name in entries:
        try:
            tasks[name] = resolve(task_raw(raw, name, monitor if name == monitored else None), registry, source,
                                  base_dir, failure_note, one_of_tasks=True)
        except ConfigError as exc:
            issues.extend(i for i in (in_task(i, name) for i in exc.issues) if i not in issues)
    callbacks = [resolve_choice(registry, "callback", v, f"callbacks.{i}", issues, note=failure_note,
                                base_dir=base_dir) for i, v in enumerate(raw.get("callbacks") or [])]
    if registry.find("callback", "history") and not any(c and c.name == "history" for c in callbacks):
        callbacks.append(resolve_choice(registry, "callback", "history", "callbacks", issues))
    found = [c for c in callbacks if c]
    directions = {COMBINED: "max", **{f"validation.{name}.{metric.split('.', 1)[1]}": way
                                      for name, t in tasks.items() for metric, way in t.directions.items()}}
    if not issues:
        issues.extend(callback_monitor_issues(found, directions))
    if issues:
        raise ConfigError(issues, source)
    first = next(iter(tasks.values()))
    training = first.training.model_copy(update={"monitor": raw["training"].get("monitor"),
                                                 "mode": raw["training"].get("mode", "auto")}
                                         if isinstance(raw.get("training"), dict) else {})
    if monitored is not None:
        directions[training.monitor or COMBINED] = tasks[monitored].directions[str(monitor)]
    return dataclasses.replace(first, raw=raw, raw_as_written=raw, training=training, callbacks=found,
                               directions=directions, tasks=tasks, sampler=sampler_dict(sampler),
                               weights={name: entry.weight for name, entry in entries.items()})


def _with_task_defaults(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The task file over its task's defaults (a head, metrics, a learning rate that suits it)."""
    raw = dict(raw)
    for key, value in defaults.items():
        user = raw.get(key)
        raw[key] = _merge(value, user if key in raw else None)
    # `--set head.dropout=0.2` on a task file that leaves the head to the task (or the optimizer to the core) makes
    # an object without a name: it names the default component.
    for key in ("head", "freeze", "optimizer", "scheduler"):
        fallback = defaults.get(key, TaskFile.model_fields[key].default)
        name = fallback.get("name") if isinstance(fallback, dict) else fallback
        if isinstance(raw.get(key), dict) and "name" not in raw[key] and isinstance(name, str):
            raw[key] = {"name": name, **raw[key]}
    return raw


@dataclass
class _Components:
    """A task file's component sections resolved; a section with a problem is None, or left out of its list."""

    data: Choice | None
    augment: list[Choice]
    head: Choice | None
    freeze: Choice | None
    optimizer: Choice | None
    scheduler: Choice | None
    metrics: list[Choice]
    callbacks: list[Choice]


def _resolve_components(raw: dict[str, Any], as_written: dict[str, Any], shape: TaskFile | None,
                        registry: Registry, task_choice: Choice | None, task_object: Any, issues: list[ConfigIssue],
                        note: str, base_dir: Path | None = None) -> _Components:
    """Each component section of ``raw`` (the task file over its task's defaults), its problems added to ``issues``
    in the order of the file's sections."""

    def choose(hook: str, value: Any, path: str) -> Choice | None:
        return resolve_choice(registry, hook, value, path, issues, note=note, base_dir=base_dir)

    def section(key: str) -> Any:
        return _section(raw, shape, key)

    data = _data_choice(raw, registry, issues, note)
    augment = [choose("augment", v, f"augment.{i}") for i, v in enumerate(section("augment"))]
    rows_shape = text_shape(task_object, data)
    if rows_shape is not None and task_choice is not None:
        issues.extend(augment_issues(augment, task_choice.name, rows_shape, registry))
    if section("head") is None:
        # A task whose own section is invalid was never built, so its default head is unknown, not missing.
        if task_object is not None:
            issues.append(ConfigIssue("head", "missing, and the task has no default head"))
        head = None
    else:
        head = choose("build_head", section("head"), "head")
    freeze = choose("freeze", section("freeze"), "freeze")
    optimizer = choose("optimizer", section("optimizer"), "optimizer")
    if optimizer is not None and raw.get("adapter") is not None:
        written = flatten(as_written)
        if "optimizer.lr" not in written:
            optimizer = adapter_learning_rate(optimizer, registry, issues)
        if "optimizer.layer_decay" not in written:
            optimizer = adapter_layer_decay(optimizer, registry, issues)
    scheduler = choose("scheduler", section("scheduler"), "scheduler")
    metrics = [choose("metric", v, f"metrics.{i}") for i, v in enumerate(section("metrics") or [])]
    callbacks = [choose("callback", v, f"callbacks.{i}") for i, v in enumerate(section("callbacks"))]
    # The history log is what makes a run inspectable afterwards: always on.
    if registry.find("callback", "history") and not any(c and c.name == "history" for c in callbacks):
        callbacks.append(resolve_choice(registry, "callback", "history", "callbacks", issues))
    return _Components(data, [c for c in augment if c], head, freeze, optimizer, scheduler, [c for c in metrics if c],
                       [c for c in callbacks if c])


def _section(raw: dict[str, Any], shape: TaskFile | None, key: str) -> Any:
    """A core section as validated; when the core's sections have problems, as written (a list where one belongs),
    so that the components are checked too and every problem shows at once."""
    if shape is not None:
        return getattr(shape, key)
    value = raw.get(key, TaskFile.model_fields[key].default)
    return value if not (key in LIST_SECTIONS and not isinstance(value, list)) else []


def _data_choice(raw: dict[str, Any], registry: Registry, issues: list[ConfigIssue], note: str) -> Choice | None:
    """The data section's format: as written, else the one its training file's extension names."""
    if raw.get("data") is None:
        issues.append(ConfigIssue("data", "missing: where is the training data? e.g. {\"train\": \"train.tsv\"}"))
        return None
    data_raw = raw["data"]
    if isinstance(data_raw, dict) and "format" not in data_raw:
        data_raw = {**data_raw, "format": infer_format(data_raw, registry)}
    return resolve_choice(registry, "load_data", data_raw, "data", issues, key="format", note=note)


SHAPE_MEANING = {"single": "one text", "pair": "a pair of texts", "tokens": "words with one tag per word"}


def text_shape(task_object: Any, data: Choice | None) -> str | None:
    """The shape of the task file's training rows, which its augmentations must handle: ``tokens`` for a task with
    one tag per word, ``pair`` when the data section names two text columns, else ``single``; None when the task or
    the data section is invalid, so the shape cannot be told (their own issues say why)."""
    if task_object is None:
        return None
    if getattr(task_object, "labels_per_word", False):
        return "tokens"
    if data is None:
        return None
    return "pair" if names_two_texts(data.options) else "single"


def names_two_texts(options: Any) -> bool:
    """Whether a data format's options name two text columns (or keys): ``text_columns()`` where the format has it
    (the built-ins), else a ``text`` list of two, else a ``text_pair`` column named."""
    columns = getattr(options, "text_columns", None)
    if callable(columns):
        return len(columns()) == 2
    text = getattr(options, "text", None)
    return (isinstance(text, (list, tuple)) and len(text) == 2) or bool(getattr(options, "text_pair", None))


def augment_issues(augment: list[Choice | None], task: str, shape: str, registry: Registry) -> list[ConfigIssue]:
    """One issue per augmentation that cannot rewrite this task file's rows: a shape it does not handle (an
    augmentation that moves words would separate tagging's words from their tags), or a task it does not name."""
    issues = []
    for i, choice in enumerate(augment):
        if choice is None:
            continue
        component = choice.component
        if shape not in component.text_shapes:
            issues.append(ConfigIssue(f"augment.{i}", shape_mismatch(component, task, shape, registry)))
        if component.tasks is not None and task not in component.tasks:
            issues.append(ConfigIssue(f"augment.{i}", f"augmentation {choice.name!r} supports the tasks "
                                      f"{', '.join(component.tasks)}, not {task}"))
    return issues


def shape_mismatch(component: Component, task: str, shape: str, registry: Registry) -> str:
    """Why an augmentation cannot rewrite rows of ``shape``, and which augmentations can."""
    undeclared = " (it declares no shapes, so it is taken to rewrite plain texts, as in 0.2)" \
        if component.shapes is None else ""
    fitting = [c.name for c in registry.components["augment"].values()
               if shape in c.text_shapes and (c.tasks is None or task in c.tasks)]
    instead = (f"augmentations that support it: {', '.join(sorted(fitting))}" if fitting
               else "no loaded augmentation supports it")
    return (f"augmentation {component.name!r} supports the shapes {', '.join(component.text_shapes)}{undeclared}; "
            f"the {task} task's rows have the shape {shape} ({SHAPE_MEANING[shape]}); {instead}")


#: An adapter starts from zero and learns at about ten times the encoder's rate (bench/lora.py: LoRA r 8 on SST-2
#: reached 0.565 accuracy at adamw's 1e-4 and 0.862 at 1e-3, where full fine-tuning reached 0.879 at 1e-4).
ADAPTER_LR = 1e-3


def adapter_layer_decay(optimizer: Choice, registry: Registry, issues: list[ConfigIssue]) -> Choice:
    """With an adapter, one learning rate for all its layers unless the task file writes ``layer_decay``: the
    default decay was chosen for full fine-tuning (the defaults study), and adapters were measured without it."""
    if getattr(optimizer.options, "layer_decay", None) is None:
        return optimizer
    return (resolve_choice(registry, "optimizer", {**optimizer.raw, "layer_decay": None}, "optimizer", issues)
            or optimizer)


def adapter_learning_rate(optimizer: Choice, registry: Registry, issues: list[ConfigIssue]) -> Choice:
    """With an adapter, an optimizer whose learning rate the task file does not set (the optimizer's or the task's
    default) trains at ``ADAPTER_LR`` when that default is lower."""
    lr = getattr(optimizer.options, "lr", None)
    if not isinstance(lr, float) or lr >= ADAPTER_LR:
        return optimizer
    return resolve_choice(registry, "optimizer", {**optimizer.raw, "lr": ADAPTER_LR}, "optimizer", issues) or optimizer


def trial_task(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The task file of one search trial: the search section gone, each parameter set as ``--set`` would."""
    base = {k: v for k, v in raw.items() if k != "search"}
    return apply_overrides(base, [f"{key}={json.dumps(value)}" for key, value in params.items()])


#: Keys a search may not vary: they say where the trials go and what code runs, not how a model trains.
NOT_SEARCHABLE = ("search", "output_dir", "plugins")


def check_search(search: SearchConfig, raw: dict[str, Any], registry: Registry, source: Path | None,
                 base_dir: Path) -> list[ConfigIssue]:
    """Each key of the search space, at each end of its range and with each of its choices, must make a valid task
    file: a search fails now, not at its seventh trial."""
    issues = []
    for key, distribution in search.space.items():
        path = f"search.space.{key}"
        if key.split(".")[0] in NOT_SEARCHABLE:
            issues.append(ConfigIssue(path, f"{key.split('.')[0]!r} cannot be searched; the space takes the "
                                      "settings of a run (e.g. optimizer.lr, training.batch_size, freeze)"))
            continue
        for value in distribution.candidates():
            try:
                resolve(trial_task(raw, {key: value}), registry, source, base_dir)
            except ConfigError as exc:
                issues.extend(ConfigIssue(path, f"with {json.dumps(value)}: {issue}") for issue in exc.issues)
                break
    return issues


COMPRESSED = (".gz", ".bz2", ".xz")


def format_suffix(path: Path) -> str:
    """The extension that names a file's format, without a compression suffix: ``train.tsv.gz`` -> ``tsv``."""
    name = path.name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return Path(name).suffix.lstrip(".")


def infer_format(data: dict[str, Any], registry: Registry) -> str | None:
    """A data section without ``format`` gets the one its training file's extension names, when one does
    (``train.tsv.gz``: tsv; the readers decompress)."""
    train = data.get("train")
    if not isinstance(train, str):
        return None
    suffix = format_suffix(Path(train))
    if suffix and registry.find("load_data", suffix):
        return suffix
    if Path(train).is_dir() or not suffix:
        return "datasets" if registry.find("load_data", "datasets") else None
    return None
