"""Which plugins load, from where, and what they declared.

Plugins come from two places, in this order: installed distributions that declare the ``engine.plugins``
entry-point group (the built-ins are declared there too, by the ``engine`` distribution itself), then modules a
task file names in ``"plugins": [...]`` (found next to the task file first, then on the import path).

``ENGINE_PLUGINS`` (comma-separated entry-point or distribution names; empty for none) pins which third-party
entry points load; ``ENGINE_BLOCK_PLUGINS`` blocks plugins by name, built-ins and task-file modules included.
The CLI's ``--plugins``/``--block-plugins`` do the same per command. A third-party plugin that fails to import,
implements hooks the engine does not have, or raises while declaring is recorded in ``failures`` and skipped
(the CLI warns once per plugin); a run fails only if it needs something that plugin would have declared, and that
error carries ``failure_note()``. Built-ins and task-file modules that fail stop the run: nothing can replace them.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from engine import hookspecs
from engine.errors import PluginError
from engine.registry import KINDS, Component, Registry, make_register

ENTRY_POINT_GROUP = "engine.plugins"
ENV_PLUGINS = "ENGINE_PLUGINS"
ENV_BLOCK = "ENGINE_BLOCK_PLUGINS"
BUILTIN_DISTRIBUTION = "engine"

BUILT_IN = "built-in"
ENTRY_POINT = "entry point"
TASK_FILE = "task file"

BLOCKED = "blocked by ENGINE_BLOCK_PLUGINS or --block-plugins"


@dataclass
class PluginInfo:
    """One loaded plugin, as ``engine plugins`` shows it and a run's manifest.json records it."""

    name: str
    module: str
    version: str
    source: str  # BUILT_IN, ENTRY_POINT or TASK_FILE (or what add_module was given)
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None  # the installed distribution, for entry points
    path: str | None = None  # the module's file, so a saved model can find a task-file module again


class ModuleNotFound(PluginError):
    """A module named as a plugin is neither in the task file's folder nor on the import path."""


def split_names(value: str | None) -> set[str] | None:
    """The names in a comma-separated list (``ENGINE_PLUGINS``, ``--plugins``); None for no list at all."""
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginManager:
    """Loads plugins and turns their declarations into a ``Registry``."""

    def __init__(self, *, only: Iterable[str] | None = None, block: Iterable[str] = ()) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.only = set(only) if only is not None else split_names(os.environ.get(ENV_PLUGINS))
        self.block = set(block) | (split_names(os.environ.get(ENV_BLOCK)) or set())
        self.infos: dict[str, PluginInfo] = {}
        #: plugin name -> why it did not load (its error, or that a pinned name is not installed)
        self.failures: dict[str, str] = {}
        #: installed plugin name -> why it was deliberately left out (pinned out or blocked)
        self.skipped: dict[str, str] = {}
        self._registry: Registry | None = None

    # --- loading ---------------------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load the built-ins and the installed third-party plugins the pin and the block list allow."""
        seen: set[str] = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else None
            builtin = dist == BUILTIN_DISTRIBUTION
            seen.update({ep.name, dist or ep.name})
            if ep.name in self.infos:
                continue  # the same distribution seen twice on sys.path
            if ep.name in self.block or (dist is not None and dist in self.block):
                self.skipped[ep.name] = BLOCKED
                continue
            if not builtin and self.only is not None and not {ep.name, dist} & self.only:
                self.skipped[ep.name] = "not named by ENGINE_PLUGINS or --plugins, which pin the plugins that load"
                continue
            # Before importing: a plugin for another engine may not even import on this one.
            reason = None if builtin else unsupported(ep.name, None, ep.dist)
            if reason is not None:
                self.failures[ep.name] = reason
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop runs that do not need it
                if builtin:
                    raise
                self.failures[ep.name] = _error(exc)
                continue
            version = ep.dist.version if ep.dist is not None else "-"
            try:
                self._add(ep.name, module, version, BUILT_IN if builtin else ENTRY_POINT, distribution=dist)
            except PluginError as exc:
                if builtin:
                    raise
                self.failures[ep.name] = str(exc)
        for name in sorted((self.only or set()) - seen):
            self.failures[name] = "not installed (named by ENGINE_PLUGINS or --plugins)"

    def load_modules(self, names: Iterable[str], base_dir: Path | None = None) -> None:
        """Import modules a task file names; ``base_dir`` (the task file's folder) is searched first."""
        for name in names:
            if not isinstance(name, str) or not name:
                continue  # the task file's validation reports it, with its path
            if name in self.block:
                self.skipped[name] = BLOCKED
                continue
            if name in self.infos:
                continue
            module = _import_from(name, base_dir)
            if self._pm.is_registered(module):
                continue  # also installed, and already loaded through its entry point
            self._add(name, module, getattr(module, "__version__", "-"), TASK_FILE)

    def add_module(self, name: str, module: object, source: str = "test") -> None:
        """Register an already imported plugin object (tests and embedding applications)."""
        self._add(name, module, getattr(module, "__version__", "-"), source)

    def _add(self, name: str, module: object, version: str, source: str, distribution: str | None = None) -> None:
        reason = None if source == BUILT_IN else unsupported(name, module, None)
        if reason is not None:
            raise PluginError(reason)
        try:
            self._pm.register(module, name=name)
            self._pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self._pm.get_plugin(name) is module:
                self._pm.unregister(name=name)
            # pluggy's message names the hook and the argument; the plugin's name is what the user knows.
            raise PluginError(f"plugin {name!r}: {exc}") from exc
        hooks = [hook for hook in KINDS
                 if any(impl.plugin is module for impl in getattr(self._pm.hook, hook).get_hookimpls())]
        modname = module.__name__ if isinstance(module, ModuleType) else type(module).__name__
        path = getattr(module, "__file__", None)
        self.infos[name] = PluginInfo(name, modname, str(version), source, hooks, distribution, path)
        self._registry = None

    # --- declarations ----------------------------------------------------------------------------------------

    def registry(self) -> Registry:
        """Call every hook once per plugin and collect what each declared.

        A third-party entry point whose hooks raise is dropped and recorded in ``failures``, like one that fails
        to import; two plugins declaring one name is an error naming both.
        """
        if self._registry is None:
            registry = Registry()
            for name, info in list(self.infos.items()):
                try:
                    components = self._declarations(name)
                except PluginError as exc:
                    if info.source != ENTRY_POINT:
                        raise
                    self._drop(name, str(exc))
                    continue
                for component in components:
                    registry.add(component)
            self._registry = registry
        return self._registry

    def _declarations(self, name: str) -> list[Component]:
        """What one plugin declares, checked for duplicates within the plugin."""
        plugin = self._pm.get_plugin(name)
        own = Registry()
        for hook in KINDS:
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    impl.function(register=make_register(own, hook, name))
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f"plugin {name!r}, hook {hook!r} raised {_error(exc)}") from exc
        return [component for by_name in own.components.values() for component in by_name.values()]

    def _drop(self, name: str, error: str) -> None:
        self._pm.unregister(name=name)
        del self.infos[name]
        self.failures[name] = error

    def failure_note(self) -> str:
        """A line naming plugins that failed to load, for errors about something missing."""
        if not self.failures:
            return ""
        return "; plugins that failed to load: " + "; ".join(f"{n} ({e})" for n, e in sorted(self.failures.items()))


VERSIONS_ATTRIBUTE = "ENGINE_VERSIONS"


def unsupported(name: str, module: object | None, distribution: metadata.Distribution | None) -> str | None:
    """Why plugin ``name`` cannot run on this engine (None: it can, or does not say which engines it supports).

    A plugin says so in its module, ``ENGINE_VERSIONS = ">=0.2,<0.4"``, or in its distribution's requirements,
    ``dependencies = ["engine>=0.2,<0.4"]`` (which pip also enforces on install, though not on a later upgrade of
    the engine, nor for ``--no-deps`` or a task-file module)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    from engine.version import __version__

    claims: list[tuple[Any, str]] = []
    if module is not None and hasattr(module, VERSIONS_ATTRIBUTE):
        declared = getattr(module, VERSIONS_ATTRIBUTE)
        try:
            claims.append((SpecifierSet(declared), f"its {VERSIONS_ATTRIBUTE} = {declared!r}"))
        except (InvalidSpecifier, TypeError):
            return (f"plugin {name!r}: {VERSIONS_ATTRIBUTE} = {declared!r} is not a range of engine versions; "
                    "expected a version specifier such as '>=0.2,<0.4'")
    requires = (distribution.requires or []) if distribution is not None else []
    dist_name = f"{distribution.name} {distribution.version}" if distribution is not None else ""
    for text in requires:
        try:
            requirement = Requirement(text)
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        except (InvalidRequirement, ValueError, KeyError):
            continue  # pip reports a broken requirement of the distribution's own; not the engine's business
        if requirement.name.lower() == BUILTIN_DISTRIBUTION and applies:
            claims.append((requirement.specifier, f"its distribution {dist_name} requires {text}"))
    for specifier, where in claims:
        if not specifier.contains(__version__, prereleases=True):
            return (f"plugin {name!r} supports engine {specifier} ({where}); this is engine {__version__}. "
                    f"Install a release of the plugin that supports engine {__version__}, or an engine it supports")
    return None


def _import_from(name: str, base_dir: Path | None) -> ModuleType:
    """Import ``name``, looking in ``base_dir`` before the import path; errors say where it was looked for."""
    top = name.split(".")[0]
    if base_dir is not None and ((base_dir / f"{top}.py").is_file() or (base_dir / top).is_dir()):
        cached = sys.modules.get(top)
        file = getattr(cached, "__file__", None)
        if cached is not None and (file is None or not Path(file).resolve().is_relative_to(base_dir.resolve())):
            # A module of this name imported from elsewhere (an earlier task in this process) would shadow the one
            # next to this task file.
            for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
                del sys.modules[key]
    # Only while importing: left on sys.path, the task's folder could shadow installed packages for the whole run.
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    importlib.invalidate_caches()  # the module may have been written a moment ago
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (top, name):
            raise PluginError(f"plugin module {name!r} (from the task file) failed to import: {_error(exc)}") from exc
        where = f" next to the task file ({base_dir}) or" if base_dir else ""
        raise ModuleNotFound(
            f"plugin module {name!r} named in the task file was not found{where} on the import path") from exc
    except Exception as exc:
        raise PluginError(f"plugin module {name!r} (from the task file) failed to import: {_error(exc)}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))


def load_plugins(
    modules: Iterable[str] = (), base_dir: Path | None = None, *, only: Iterable[str] | None = None,
    block: Iterable[str] = (),
) -> PluginManager:
    """The usual way in: entry points first, then the task file's modules, then every declaration collected (so
    ``failures`` is complete when this returns)."""
    manager = PluginManager(only=only, block=block)
    manager.load_entry_points()
    manager.load_modules(modules, base_dir)
    manager.registry()
    return manager

