"""The plugins a call of the Python API loads: those `engine` loads on the command line, pinned or blocked by the
same names as ``--plugins`` and ``--block-plugins``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from engine import console
from engine.plugins.manager import PluginManager, load_plugins, split_names


def plugin_manager(modules: Sequence[str] = (), base_dir: Path | None = None, *,
                   only: str | Iterable[str] | None = None, block: str | Iterable[str] = ()) -> PluginManager:
    """The installed plugins (``only``: just these third-party ones; default: ``ENGINE_PLUGINS``, else all), less
    ``block``, then the task file's ``modules`` (looked for in ``base_dir`` first); a third-party plugin that fails to
    load is named in a warning, as the CLI does."""
    manager = load_plugins(modules, base_dir, only=names(only), block=names(block) or set())
    for name, error in manager.failures.items():
        console.warn(f"plugin {name!r} failed to load and is skipped: {error}")
    return manager


def names(value: str | Iterable[str] | None) -> set[str] | None:
    """Plugin names given as a comma-separated string (as on the command line) or as an iterable."""
    if value is None or isinstance(value, str):
        return split_names(value)
    return {name.strip() for name in value if name.strip()}
