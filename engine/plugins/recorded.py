"""The plugins a saved model was trained with, found again: the components its engine.json names, and the
task-file modules its run recorded (imported from where the run recorded them only when trusted: a run directory is
data). Shared by `engine predict`/`evaluate` (loading a model) and `engine report` (a run's task sections)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from engine.config.choice import Choice, resolve_choice
from engine.errors import ConfigError, PluginError
from engine.plugins.manager import TASK_FILE, ModuleNotFound, PluginManager
from engine.registry import KINDS


def recorded_choice(manager: PluginManager, hook: str, raw: Any, what: str, plugins: dict[str, str],
                    trained_with: dict[str, dict[str, Any]], untrusted: dict[str, str]) -> Choice:
    """The component a saved run names (``raw``, at ``what``), from the plugins loaded now; a PluginError saying
    which of the run's plugins (``plugins``: name -> version) is missing, and why, when none declares it."""
    registry = manager.registry()
    key = "format" if hook == "load_data" else "name"
    name = raw.get(key) if isinstance(raw, dict) else raw
    if not isinstance(name, str) or registry.find(hook, name) is None:
        raise PluginError(missing_message(manager, KINDS[hook], name, plugins, trained_with, untrusted))
    issues: list = []
    choice = resolve_choice(registry, hook, raw, what, issues, key=key)
    if issues or choice is None:
        raise ConfigError(issues, what)
    return choice


def missing_message(manager: PluginManager, kind: str, name: Any, plugins: dict[str, str],
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


def load_recorded_modules(manager: PluginManager, needed: dict[str, str], trained_with: dict[str, dict[str, Any]],
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
            if trained_with or not findable(name):
                continue
            info = {"source": TASK_FILE}
        if info.get("source") != TASK_FILE:
            continue
        path = info.get("path")
        base_dir = import_root(Path(path), name) if path else None
        recorded = base_dir if base_dir and base_dir.is_dir() and not findable(name) else None
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


def findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_root(path: Path, name: str) -> Path:
    """The folder from which module ``name`` (``a.b``) imports as the file ``path`` (``.../a/b.py``)."""
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    return path.parents[depth]
