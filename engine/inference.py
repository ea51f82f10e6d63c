"""A saved model back in memory, for `engine predict` and `engine evaluate`: the same task, head and encoding
code that trained it, so it never sees text prepared differently."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Choice, resolve_choice
from engine.data import Split
from engine.errors import ConfigError, EngineError, PluginError, RunDirError
from engine.model import EngineModel, load_backbone, load_head_weights, read_engine_file
from engine.plugins import PluginManager
from engine.registry import KINDS


@dataclass
class LoadedModel:
    directory: Path
    meta: dict[str, Any]
    task: Any
    tokenizer: Any
    model: EngineModel
    data: Choice | None


def model_dir_of(path: Path) -> Path:
    """A run directory or its model/ folder, either way."""
    if (path / "model" / "engine.json").is_file():
        return path / "model"
    if (path / "engine.json").is_file():
        return path
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    raise RunDirError(f"{path}: no trained model here (expected {path}/model/engine.json; did the run finish?)")


def _choice(manager: PluginManager, hook: str, raw: Any, what: str, plugins: dict[str, str]) -> Choice:
    registry = manager.registry()
    name = raw.get("name") if isinstance(raw, dict) else raw
    if isinstance(raw, dict) and hook == "load_data":
        name = raw.get("format")
    if registry.find(hook, name) is None:
        owners = ", ".join(f"{p} {v}" for p, v in plugins.items())
        raise PluginError(
            f"this model needs the {KINDS[hook]} {name!r}, which no loaded plugin declares. It was trained with "
            f"plugins: {owners or 'unknown'}; install the one that declares {name!r}{manager.failure_note()}"
        )
    issues: list = []
    choice = resolve_choice(registry, hook, raw, what, issues, key="format" if hook == "load_data" else "name")
    if issues or choice is None:
        raise ConfigError(issues, what)
    return choice


def load_model(path: Path, manager: PluginManager) -> LoadedModel:
    directory = model_dir_of(path)
    meta = read_engine_file(directory)
    plugins = meta.get("plugins", {})
    task_choice = _choice(manager, "task", meta["task"], "engine.json task", plugins)
    head_choice = _choice(manager, "build_head", meta["head"], "engine.json head", plugins)
    data = meta.get("data", {}).get("options")
    data_choice = None
    if data:
        try:
            data_choice = _choice(manager, "load_data", data, "engine.json data", plugins)
        except EngineError:
            data_choice = None  # an input file can still name its own format
    task = task_choice.build()
    task.load_state_dict(meta.get("task_state", {}))
    tokenizer, backbone = load_backbone(directory)
    head = head_choice.build(task.head_spec(backbone.config.hidden_size))
    load_head_weights(head, directory)
    model = EngineModel(backbone, head, list(tokenizer.model_input_names))
    model.eval()
    return LoadedModel(directory, meta, task, tokenizer, model, data_choice)


def read_input(loaded: LoadedModel, manager: PluginManager, file: Path, *, labelled: bool) -> Split:
    """Read a file the way the training data was read: the same format and column names, unless its extension
    names another format."""
    registry = manager.registry()
    fmt = file.suffix.lstrip(".").lower()
    base = dict(loaded.data.raw) if loaded.data else {}
    if registry.find("load_data", fmt) is None:
        fmt = base.get("format") or fmt
    raw = {k: v for k, v in base.items() if k not in ("train", "validation", "test", "format")}
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
    if not split.rows:
        raise EngineError(f"{file}: no rows to read")
    return Split("input", split.rows, str(file), split.info)


def write_jsonl(rows: list[dict[str, Any]], output: Path | None) -> None:
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        import sys

        sys.stdout.write(lines)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(output)
