"""A saved model back in memory, for `engine predict` and `engine evaluate`: the same task, head and encoding
code that trained it, so it never sees text prepared differently."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from engine.config.choice import Choice, resolve_choice
from engine.config.resolve import format_suffix
from engine.data.split import DELIVERY, Split
from engine.errors import ConfigError, EngineError, RunDirError
from engine.model.adapters import load_adapted_backbone
from engine.model.encoder import EngineModel
from engine.model.multitask import HEADS_DIR
from engine.model.saved import load_backbone, load_head_weights, read_engine_file
from engine.plugins.manager import PluginManager
from engine.plugins.recorded import load_recorded_modules, recorded_choice
from engine.rundir.reading import read_json, read_task_json, recorded_plugins


@dataclass
class LoadedModel:
    directory: Path
    meta: dict[str, Any]
    task: Any
    tokenizer: Any
    model: EngineModel
    data: Choice | None
    task_plugin: str  # the plugin that declares the task (its version is part of the features' cache key)
    #: The task's name in a multi-task model (its head in model/heads/NAME/), None for a one-task model.
    name: str | None = None


def model_dir_of(path: Path) -> Path:
    """A run directory or its model/ folder (or its adapter/ folder, when the run trained an adapter)."""
    if (path / "model" / "engine.json").is_file():
        return path / "model"
    if (path / "engine.json").is_file():
        return path
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    raise RunDirError(f"{path}: no trained model here (expected {path}/model/engine.json; did the run finish?)")


def load_model(path: Path, manager: PluginManager, *, trust_plugins: bool = False,
               task: str | None = None) -> LoadedModel:
    """A saved model, its task and head built by the plugins that trained it. Task-file modules are imported from
    where the run recorded them only with ``trust_plugins`` (the run directory is data; see ``--trust-plugins``).
    ``task``: which task of a multi-task model (required there; refused for a one-task model)."""
    directory = model_dir_of(path)
    meta = read_engine_file(directory)
    if "tasks" in meta or task is not None:
        if task not in meta.get("tasks", {}):
            raise EngineError(task_refusal(directory, task, list(meta.get("tasks", {}))))
        return load_tasks(path, manager, trust_plugins=trust_plugins)[str(task)]
    tokenizer, backbone = load_adapted_backbone(directory, meta) if meta.get("adapter") else load_backbone(directory)
    loaded = build_loaded(directory, meta, manager, trust_plugins, tokenizer, backbone)
    load_head_weights(loaded.model.head, directory)
    return loaded


def recorded_sections(directory: Path) -> dict[str | None, dict[str, Any]]:
    """The task file's sections as the run recorded them in its task.json (every option, defaults filled in), for the
    model in ``directory`` (a run's model/): by task name in a multi-task run, under None in a one-task run; {} for a
    model folder outside a run directory."""
    config = read_json(directory.parent / "task.json")
    if not isinstance(config, dict):
        return {}
    tasks = config.get("tasks")
    if isinstance(tasks, dict):
        return {name: entry for name, entry in tasks.items() if isinstance(entry, dict)}
    return {None: config}


def with_recorded(section: Any, recorded: Any) -> Any:
    """An engine.json section (the task's, the head's) with the options the run recorded filled in where it lacks
    them: a model saved before 0.3 kept only what its task file wrote, so that loading it under later defaults would
    build another head (another pooling) than the one trained. engine.json's own values win."""
    if isinstance(section, dict) and isinstance(recorded, dict) and recorded.get("name") == section.get("name"):
        return {**recorded, **section}
    return section


def task_refusal(directory: Path, task: str | None, tasks: list[str]) -> str:
    """Why ``task`` does not name one task of the model in ``directory`` (which has ``tasks``, or one task)."""
    if not tasks:
        return f"{directory}: a one-task model; --task (task=) is for multi-task models"
    given = f"no task {task!r}" if task is not None else "a multi-task model"
    return f"{directory}: {given}; name one of its tasks: {', '.join(tasks)} (--task NAME, or task=NAME)"


def load_tasks(path: Path, manager: PluginManager, *, trust_plugins: bool = False) -> dict[str, LoadedModel]:
    """Each task of a multi-task model (model/engine.json lists them), all on one encoder object: the tasks'
    models share it."""
    directory = model_dir_of(path)
    top = read_engine_file(directory)
    tasks = top.get("tasks")
    if not isinstance(tasks, dict):
        raise EngineError(task_refusal(directory, None, []))
    tokenizer, backbone = load_adapted_backbone(directory, top) if top.get("adapter") else load_backbone(directory)
    shared = {k: v for k, v in top.items() if k != "tasks"}
    sections = recorded_sections(directory)  # read once for every task
    loaded = {}
    for name, folder in tasks.items():
        meta = {**shared, **read_engine_file(directory / folder)}
        loaded[name] = build_loaded(directory, meta, manager, trust_plugins, tokenizer, backbone, name=name,
                                    recorded=sections.get(name, {}))
        load_head_weights(loaded[name].model.head, directory / folder)
    return loaded


def build_loaded(directory: Path, meta: dict[str, Any], manager: PluginManager, trust_plugins: bool, tokenizer: Any,
                 backbone: Any, name: str | None = None, recorded: dict[str, Any] | None = None) -> LoadedModel:
    """A saved task and head (its weights not yet loaded) on ``backbone``, built by the plugins that trained them.
    ``recorded``: the run's task.json sections for this model (``recorded_sections``; read here when not given)."""
    plugins = meta.get("plugins", {})
    trained_with = recorded_plugins(directory.parent)
    untrusted = load_recorded_modules(manager, plugins, trained_with, trust_plugins)
    choose = partial(recorded_choice, manager, plugins=plugins, trained_with=trained_with, untrusted=untrusted)
    if recorded is None:
        recorded = recorded_sections(directory).get(name, {})
    task_choice = choose("task", with_recorded(meta["task"], recorded.get("task")), "engine.json task")
    head_choice = choose("build_head", with_recorded(meta["head"], recorded.get("head")), "engine.json head")
    data = meta.get("data", {}).get("options")
    data_choice = None
    if data:
        try:
            data_choice = choose("load_data", data, "engine.json data")
        except EngineError:
            data_choice = None  # an input file can still name its own format
    task = task_choice.build()
    task.load_state_dict(meta.get("task_state", {}))
    config: Any = backbone.config
    head = head_choice.build(task.head_spec(config.hidden_size))
    model = EngineModel(backbone, head, list(tokenizer.model_input_names))
    model.eval()
    return LoadedModel(directory, meta, task, tokenizer, model, data_choice, task_choice.component.plugin, name)


def read_input(loaded: LoadedModel, manager: PluginManager, file: Path, *, labelled: bool,
               fmt: str | None = None) -> Split:
    """Read a file the way the training data was read: the same format and column names, unless ``fmt`` (the
    CLI's ``--format``) or the file's extension names another format."""
    registry = manager.registry()
    base = dict(loaded.data.raw) if loaded.data else {}
    if fmt is not None:
        if registry.find("load_data", fmt) is None:
            raise EngineError(str(registry.unknown("load_data", fmt, "--format")))
    else:
        fmt = format_suffix(file)
        if registry.find("load_data", fmt) is None:
            fmt = base.get("format") or fmt
    raw = {k: v for k, v in base.items() if k not in DELIVERY | {"format"}}
    raw.update({"format": fmt, "train": str(file.resolve()), "labels_required": labelled})
    component = registry.find("load_data", fmt)
    if component is None:
        raise EngineError(f"{file}: cannot tell its format from the extension; expected one of: "
                          f"{', '.join('.' + n for n in registry.names('load_data'))}")
    if component.options is not None:
        allowed = set(component.options.model_fields)
        raw = {k: v for k, v in raw.items() if k in allowed or k == "format"}
    issues: list = []
    choice = resolve_choice(registry, "load_data", raw, "input", issues, key="format")
    if issues or choice is None:
        raise ConfigError(issues, file)
    splits = choice.build(Path.cwd())
    split = splits["train"]
    if split.streaming or not len(split):
        raise EngineError(f"{file}: no rows to read" if not split.streaming else f"{file}: cannot predict on a stream")
    return Split("input", split.data, str(file), split.info, fingerprint=split.fingerprint)


def task_of_run(run_dir: Path, manager: PluginManager, *, trust_plugins: bool = False) -> tuple[Any, str | None]:
    """The run's task object, built by the plugin that declares it, for its report sections: (task, None), or
    (None, why not); of a multi-task run, ({NAME: task}, None). Task-file modules load from where the run recorded
    them only with ``trust_plugins``."""
    config = read_task_json(run_dir)
    trained_with = recorded_plugins(run_dir)
    plugins = {name: str(info.get("version")) for name, info in trained_with.items()}
    entries = config["tasks"] if isinstance(config.get("tasks"), dict) else {None: config}
    tasks: dict[str | None, Any] = {}
    try:
        untrusted = load_recorded_modules(manager, plugins, trained_with, trust_plugins)
        for name, entry in entries.items():
            where = f"task.json tasks.{name}.task" if name is not None else "task.json task"
            tasks[name] = recorded_choice(manager, "task", entry.get("task"), where, plugins, trained_with,
                                          untrusted).build()
            folder = run_dir / "model" / (f"{HEADS_DIR}/{name}" if name is not None else "")
            meta = read_json(folder / "engine.json")
            if isinstance(meta, dict) and meta.get("task_state"):
                tasks[name].load_state_dict(meta["task_state"])
    except EngineError as exc:
        return None, f"The task's own sections are left out: {exc}"
    return tasks.get(None, tasks), None
