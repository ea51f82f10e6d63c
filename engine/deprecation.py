"""Deprecations of the plugin contract: each warns for one minor version, then goes.

A deprecated way keeps working for the minor version that deprecates it, with a ``DeprecationWarning`` (also
printed once per plugin class) naming what replaces it, the release that removes it and the guide's migration
section. The next minor version removes it. tests/plugins/test_versions.py fails once the engine's version reaches
a removal, so none outlives its notice and none is removed unannounced.

A module path that moved (``MOVED_MODULES``) warns once per process, as the module left at the old path is imported.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Deprecation:
    what: str  # the old way, as a plugin author wrote it
    instead: str  # what to write now
    since: str  # the minor version that deprecates it
    removed_in: str  # the next minor version
    guide: str  # where docs/plugins.md explains the migration
    why: str = ""


DEPRECATIONS: dict[str, Deprecation] = {
    "encode": Deprecation(
        "encode(split, ...)", "encode_batch(rows, tokenizer, max_length, labelled)", since="0.2", removed_in="0.3",
        guide="docs/plugins.md, 'Migrating to encode_batch'",
        why="it tokenizes in parallel, is cached between runs, and scales past memory"),
}

_warned: set[tuple[str, str]] = set()


def warn_deprecated(key: str, who: str) -> None:
    """Warn, once per ``who`` (a plugin's class or module), that it uses deprecation ``key``."""
    from engine import console

    if (key, who) in _warned:
        return
    _warned.add((key, who))
    d = DEPRECATIONS[key]
    message = (f"{who} implements {d.what}, which engine {d.since} deprecates and {d.removed_in} removes; implement "
               f"{d.instead} instead ({d.guide})" + (f": {d.why}" if d.why else ""))
    warnings.warn(message, DeprecationWarning, stacklevel=3)
    console.warn(message)


#: Module paths of engine 0.2 that moved when engine/ was arranged in rooms (0.3), each to its new path. The old
#: path still imports, with a DeprecationWarning, until 0.4 (docs/plugins.md, 'Module paths in 0.3').
MOVED_MODULES: dict[str, str] = {
    "engine.charts": "engine.report.charts",
    "engine.reference": "engine.cli.reference",
    "engine.cache": "engine.data.cache",
}
MODULES_MOVED_IN, MOVED_MODULES_REMOVED_IN = "0.3", "0.4"


def warn_moved(old: str) -> None:
    """Warn that module ``old`` moved (called by the module left at the old path, as it is imported)."""
    new = MOVED_MODULES[old]
    warnings.warn(f"{old} moved to {new} in engine {MODULES_MOVED_IN} and the old path goes in "
                  f"{MOVED_MODULES_REMOVED_IN}; import {new} instead (docs/plugins.md, 'Module paths in 0.3')",
                  DeprecationWarning, stacklevel=3)
