"""A saved model back in memory, for `engine predict` and `engine evaluate`: the same task, head and encoding
code that trained it, so it never sees text prepared differently."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import Choice, resolve_choice
from engine.data import DELIVERY, Split
from engine.errors import ConfigError, EngineError, PluginError, RunDirError
from engine.model import EngineModel, load_backbone, load_head_weights, read_engine_file
from engine.plugins import TASK_FILE, ModuleNotFound, PluginManager
from engine.registry import KINDS


@dataclass
class LoadedModel:
    directory: Path
    meta: dict[str, Any]
    task: Any
    tokenizer: Any
    model: EngineModel
    data: Choice | None
    task_plugin: str  # the plugin that declares the task (its version is part of the features' cache key)


def model_dir_of(path: Path) -> Path:
    """A run directory or its model/ folder (or its adapter/ folder, when the run trained an adapter)."""
    if (path / "model" / "engine.json").is_file():
        return path / "model"
    if (path / "engine.json").is_file():
        return path
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    raise RunDirError(f"{path}: no trained model here (expected {path}/model/engine.json; did the run finish?)")


def _choice(manager: PluginManager, hook: str, raw: Any, what: str, plugins: dict[str, str],
            trained_with: dict[str, dict[str, Any]], untrusted: dict[str, str]) -> Choice:
    registry = manager.registry()
    key = "format" if hook == "load_data" else "name"
    name = raw.get(key) if isinstance(raw, dict) else raw
    if not isinstance(name, str) or registry.find(hook, name) is None:
        raise PluginError(_missing_message(manager, KINDS[hook], name, plugins, trained_with, untrusted))
    issues: list = []
    choice = resolve_choice(registry, hook, raw, what, issues, key=key)
    if issues or choice is None:
        raise ConfigError(issues, what)
    return choice


def _missing_message(manager: PluginManager, kind: str, name: Any, plugins: dict[str, str],
                     trained_with: dict[str, dict[str, Any]], untrusted: dict[str, str]) -> str:
    """Which of the plugins the model was trained with is not loaded now, and what to do about it."""
    absent = [p for p in plugins if p not in manager.infos]
    if not absent:
        return (f"this model needs the {kind} {name!r}, which no loaded plugin declares (it was trained with plugins: "
                f"{', '.join(f'{p} {v}' for p, v in plugins.items()) or 'unknown'}){manager.failure_note()}")
    reasons = []
    for plugin in absent:
        info = trained_with.get(plugin, {})
        label = f"{plugin!r} {plugins[plugin]}"
        if plugin in untrusted:
            reasons.append(f"plugin {label} is a module the training task file named, recorded at {untrusted[plugin]}; "
                           "a run directory is data, so engine runs no code it points to unless you pass "
                           "--trust-plugins (read that file first), or put the module on the import path (PYTHONPATH)")
        elif plugin in manager.skipped:
            reasons.append(f"plugin {label} is installed but not loaded: {manager.skipped[plugin]}")
        elif plugin in manager.failures:
            reasons.append(f"plugin {label} failed to load: {manager.failures[plugin]}")
        elif info.get("source") == TASK_FILE:
            where = f" (it was {info['path']})" if info.get("path") else ""
            reasons.append(f"plugin {label} is a module the training task file named{where}; put it next to the "
                           f"task file or on the import path (PYTHONPATH)")
        else:
            dist = info.get("distribution")
            hint = f": pip install {dist}" if dist else ""
            reasons.append(f"plugin {label} is not installed{hint}")
    return f"this model needs the {kind} {name!r}, which no loaded plugin declares. " + "; ".join(reasons)


def _trained_with(directory: Path) -> dict[str, dict[str, Any]]:
    """The plugins of the run that saved the model, by name, as its manifest.json recorded them (when it is there)."""
    manifest = directory.parent / "manifest.json"
    try:
        plugins = json.loads(manifest.read_text(encoding="utf-8")).get("plugins", [])
    except (OSError, ValueError):
        return {}
    return {p["name"]: p for p in plugins if isinstance(p, dict) and "name" in p}


def _load_task_file_plugins(manager: PluginManager, needed: dict[str, str], trained_with: dict[str, dict[str, Any]],
                            trust: bool) -> dict[str, str]:
    """Import again the task-file modules the model was trained with: from the import path (the user's own), or,
    with ``trust``, from the folder the run recorded. Returns the modules left out for want of ``trust`` (name ->
    recorded path); those, and the ones not found, are left for the missing-component error to name."""
    untrusted: dict[str, str] = {}
    for name in needed:
        if name in manager.infos or name in manager.skipped or name in manager.failures:
            continue
        info = trained_with.get(name)
        if info is None:
            # A model/ folder without its run's manifest: a module of that name on the import path is the best guess.
            if trained_with or not _findable(name):
                continue
            info = {"source": TASK_FILE}
        if info.get("source") != TASK_FILE:
            continue
        path = info.get("path")
        base_dir = _import_root(Path(path), name) if path else None
        recorded = base_dir if base_dir and base_dir.is_dir() and not _findable(name) else None
        if recorded is not None and not trust:
            untrusted[name] = str(path)
            continue
        try:
            manager.load_modules([name], recorded)
        except ModuleNotFound:
            continue  # the missing-component error says where it was
        except PluginError as exc:
            manager.failures[name] = str(exc)
    return untrusted


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import_root(path: Path, name: str) -> Path:
    """The folder from which module ``name`` (``a.b``) imports as the file ``path`` (``.../a/b.py``)."""
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    return path.parents[depth]


def load_model(path: Path, manager: PluginManager, *, trust_plugins: bool = False) -> LoadedModel:
    """A saved model, its task and head built by the plugins that trained it. Task-file modules are imported from
    where the run recorded them only with ``trust_plugins`` (the run directory is data; see ``--trust-plugins``)."""
    directory = model_dir_of(path)
    meta = read_engine_file(directory)
    plugins = meta.get("plugins", {})
    trained_with = _trained_with(directory)
    untrusted = _load_task_file_plugins(manager, plugins, trained_with, trust_plugins)
    task_choice = _choice(manager, "task", meta["task"], "engine.json task", plugins, trained_with, untrusted)
    head_choice = _choice(manager, "build_head", meta["head"], "engine.json head", plugins, trained_with, untrusted)
    data = meta.get("data", {}).get("options")
    data_choice = None
    if data:
        try:
            data_choice = _choice(manager, "load_data", data, "engine.json data", plugins, trained_with, untrusted)
        except EngineError:
            data_choice = None  # an input file can still name its own format
    task = task_choice.build()
    task.load_state_dict(meta.get("task_state", {}))
    tokenizer, backbone = load_backbone(directory, meta)
    config: Any = backbone.config
    head = head_choice.build(task.head_spec(config.hidden_size))
    load_head_weights(head, directory)
    model = EngineModel(backbone, head, list(tokenizer.model_input_names))
    model.eval()
    return LoadedModel(directory, meta, task, tokenizer, model, data_choice, task_choice.component.plugin)


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
        fmt = file.suffix.lstrip(".").lower()
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


@dataclass
class Inference:
    """A model's outputs on one input split, with what produced them."""

    split: Split
    features: Any
    outputs: list[Any]
    loss: float | None
    is_main_process: bool


def quantize_int8(model: EngineModel) -> EngineModel:
    """The encoder's ``nn.Linear`` layers with int8 weights, activations quantized per batch (torch's dynamic
    quantization, for CPU inference); the head stays as trained. In place; returns the model."""
    import warnings

    import torch

    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise EngineError(f"--quantize int8: this torch ({torch.__version__}) has no dynamic quantization "
                          "(torch.ao.quantization.quantize_dynamic); predict without --quantize")
    with warnings.catch_warnings():  # torch announces the move of this API to torchao; it works as documented here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.backbone = quantization.quantize_dynamic(model.backbone, {torch.nn.Linear}, dtype=torch.qint8)
    return model


def run_inference(loaded: LoadedModel, split: Split, batch_size: int, *, labelled: bool, description: str,
                  quantize: str | None = None) -> Inference:
    """Encode ``split`` as training did and run the model over it (on every process under a distributed launch);
    ``quantize="int8"``: with the encoder in int8, on the CPU."""
    from accelerate import Accelerator

    from engine.features import encode_split, feature_key
    from engine.trainer import first_on_node, infer

    accelerator = Accelerator()
    if quantize == "int8":
        if accelerator.device.type != "cpu":
            raise EngineError(f"--quantize int8 is a CPU serving path; this process runs on {accelerator.device}. "
                              "Predict without it (a GPU is faster in the model's own precision)")
        quantize_int8(loaded.model)
    features = first_on_node(accelerator, lambda: encode_split(
        loaded.task, split, loaded.tokenizer, loaded.meta["max_length"], labelled=labelled,
        key=feature_key(loaded.meta["task"], loaded.meta.get("plugins", {}).get(loaded.task_plugin))))
    model = accelerator.prepare_model(loaded.model, evaluation_mode=True)
    outputs, loss = infer(model, features, loaded.task, loaded.tokenizer, batch_size, accelerator, description)
    return Inference(split, features, outputs, loss, accelerator.is_main_process)


def write_jsonl(rows: list[dict[str, Any]], output: Path | None) -> None:
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if output is None:
        sys.stdout.write(lines)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(output)
