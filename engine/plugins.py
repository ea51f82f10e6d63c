"""Which plugins load, from where, and what they declared.

Plugins come from three places, in this order: installed distributions that declare the ``engine.plugins``
entry-point group (the built-ins are declared there too, by the ``engine`` distribution itself), then modules a
task file names in ``"plugins": [...]`` (found next to the task file or on the import path).

``ENGINE_PLUGINS`` (comma-separated entry-point names, or empty for none) pins which third-party entry points load;
``ENGINE_BLOCK_PLUGINS`` blocks plugins by name, built-ins included. The CLI's ``--plugins``/``--block-plugins``
do the same per command. A third-party plugin that fails to import is reported as a warning and skipped; the run
fails only if it needs what that plugin would have declared.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Iterable

import pluggy

from engine import hookspecs
from engine.errors import PluginError
from engine.registry import KINDS, Registry, make_register

ENTRY_POINT_GROUP = "engine.plugins"
ENV_PLUGINS = "ENGINE_PLUGINS"
ENV_BLOCK = "ENGINE_BLOCK_PLUGINS"
BUILTIN_DISTRIBUTION = "engine"


@dataclass
class PluginInfo:
    name: str
    module: str
    version: str
    source: str  # "built-in", "entry point" or "task file"
    hooks: list[str] = field(default_factory=list)


def _split(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class PluginManager:
    """Loads plugins and turns their declarations into a ``Registry``."""

    def __init__(self, *, only: Iterable[str] | None = None, block: Iterable[str] = ()) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        env_only = _split(os.environ.get(ENV_PLUGINS))
        self.only = set(only) if only is not None else env_only
        self.block = set(block) | (_split(os.environ.get(ENV_BLOCK)) or set())
        self.infos: dict[str, PluginInfo] = {}
        self.failures: dict[str, str] = {}
        self._registry: Registry | None = None

    # --- loading ---------------------------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            builtin = dist == BUILTIN_DISTRIBUTION
            if ep.name in self.block or (not builtin and self.only is not None and ep.name not in self.only):
                continue
            if ep.name in self.infos:
                continue  # the same distribution seen twice on sys.path
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop runs that do not need it
                if builtin:
                    raise
                self.failures[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            version = ep.dist.version if ep.dist is not None else "?"
            self._add(ep.name, module, version, "built-in" if builtin else "entry point")

    def load_modules(self, names: Iterable[str], base_dir: Path | None = None) -> None:
        """Import modules a task file names; ``base_dir`` (the task file's folder) is searched first."""
        for name in names:
            if name in self.block or name in self.infos:
                continue
            added = base_dir is not None and str(base_dir) not in sys.path
            if added:
                sys.path.insert(0, str(base_dir))
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name.split(".")[0] and exc.name != name:
                    raise PluginError(f"plugin module {name!r} (from the task file) failed to import: {exc}") from exc
                where = f" next to the task file ({base_dir}) or" if base_dir else ""
                raise PluginError(f"plugin module {name!r} named in the task file was not found{where} on the import path") from exc
            except Exception as exc:
                raise PluginError(f"plugin module {name!r} (from the task file) failed to import: {type(exc).__name__}: {exc}") from exc
            finally:
                if added:
                    sys.path.remove(str(base_dir))
            self._add(name, module, getattr(module, "__version__", "-"), "task file")

    def add_module(self, name: str, module: object, source: str = "test") -> None:
        """Register an already imported plugin object (tests and embedding applications)."""
        self._add(name, module, getattr(module, "__version__", "-"), source)

    def _add(self, name: str, module: object, version: str, source: str) -> None:
        try:
            self._pm.register(module, name=name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=name)
            raise PluginError(f"plugin {name!r}: {exc}") from exc
        hooks = [impl_hook for impl_hook in KINDS if any(
            self._pm.get_name(impl.plugin) == name for impl in getattr(self._pm.hook, impl_hook).get_hookimpls()
        )]
        modname = module.__name__ if isinstance(module, ModuleType) else type(module).__name__
        self.infos[name] = PluginInfo(name, modname, version, source, hooks)
        self._registry = None

    # --- declarations ----------------------------------------------------------------------------------------

    def registry(self) -> Registry:
        """Call every hook once per plugin and collect what each declared."""
        if self._registry is None:
            registry = Registry()
            for hook in KINDS:
                for impl in getattr(self._pm.hook, hook).get_hookimpls():
                    plugin = self._pm.get_name(impl.plugin) or "?"
                    impl.function(register=make_register(registry, hook, plugin))
            self._registry = registry
        return self._registry

    def failure_note(self) -> str:
        """A line naming plugins that failed to import, for errors about something missing."""
        if not self.failures:
            return ""
        return "; plugins that failed to load: " + "; ".join(f"{n} ({e})" for n, e in sorted(self.failures.items()))


def load_plugins(
    modules: Iterable[str] = (), base_dir: Path | None = None, *, only: Iterable[str] | None = None,
    block: Iterable[str] = (),
) -> PluginManager:
    """The usual way in: entry points first, then the task file's modules."""
    manager = PluginManager(only=only, block=block)
    manager.load_entry_points()
    manager.load_modules(modules, base_dir)
    return manager
