"""The data cache: parsed data files and tokenized features as Arrow files, keyed by everything that made them.

A second run on the same data maps these files instead of reading and tokenizing again; every process of a node
maps the same files. An entry is a folder ``ROOT/KIND/KEY/`` with its Arrow files and ``info.json`` (what made it,
written last: a folder without it is unfinished). The key hashes the inputs (a data file's path, size and
modification time; the format's options; the task, its options and what it learned; the tokenizer's content; the
maximum length; the engine's version), so any change makes a new entry and nothing stale is ever read.

The root is ``$ENGINE_CACHE``, else ``$XDG_CACHE_HOME/engine``, else ``~/.cache/engine``. ``engine cache`` shows
its entries and sizes; ``engine cache --clear`` empties it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

INFO = "info.json"


def cache_root() -> Path:
    if os.environ.get("ENGINE_CACHE"):
        return Path(os.environ["ENGINE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "engine"


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts."""
    from engine.version import __version__

    text = json.dumps([__version__, *parts], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def file_fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a file's content without reading it: its path, size and modification time (every file
    below it, for a folder)."""
    path = path.resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {"path": str(path), "files": [(str(p.relative_to(path)) if path.is_dir() else "", p.stat().st_size,
                                          p.stat().st_mtime_ns) for p in files if p.exists()]}


def lookup(kind: str, key: str) -> Path | None:
    """The finished entry for ``key``, marked as used now; None if there is none."""
    entry = cache_root() / kind / key
    info = entry / INFO
    if not info.is_file():
        return None
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(info)
    return entry


def build(kind: str, key: str, make: Callable[[Path], dict[str, Any]]) -> Path:
    """Make an entry: ``make(folder)`` writes its Arrow files and returns a description; the folder is renamed into
    place when complete, so a killed build leaves no entry (and another process building the same key at the same
    time loses nothing: the first to finish wins, the other's copy is dropped)."""
    folder = cache_root() / kind
    folder.mkdir(parents=True, exist_ok=True)
    entry = folder / key
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        info = make(tmp)
        (tmp / INFO).write_text(json.dumps({"kind": kind, "created": time.time(), **info}, indent=1, default=str),
                                encoding="utf-8")
        try:
            tmp.rename(entry)
        except OSError:  # built meanwhile by another process
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entry


def load(entry: Path, name: str) -> datasets.Dataset:
    """The Arrow files of ``name`` in an entry (one, or the shards of several tokenizing processes), memory-mapped."""
    import datasets

    files = sorted(entry.glob(f"{name}.arrow")) + sorted(entry.glob(f"{name}_*.arrow"))
    parts = [datasets.Dataset.from_file(str(f)) for f in files]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


@dataclass
class Entry:
    kind: str
    key: str
    path: Path
    size: int
    last_used: float
    info: dict[str, Any]


def entries() -> list[Entry]:
    """Every finished entry, most recently used first."""
    found = []
    root = cache_root()
    for info in root.glob(f"*/*/{INFO}"):
        entry = info.parent
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
            size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
            found.append(Entry(entry.parent.name, entry.name, entry, size, info.stat().st_mtime, meta))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda e: e.last_used, reverse=True)


STALE_BUILD = 86400  # seconds: an unfinished build older than this was killed (a live one may still be writing)


def clear(older_than_days: float | None = None) -> tuple[int, int]:
    """Remove entries (those unused for ``older_than_days``, or all) and stale unfinished builds: (count, bytes)."""
    root = cache_root()
    removed, freed = 0, 0
    now = time.time()
    cutoff = now - older_than_days * 86400 if older_than_days is not None else None
    for entry in entries():
        if cutoff is None or entry.last_used < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed, freed = removed + 1, freed + entry.size
    for tmp in root.glob("*/.*.tmp"):
        try:
            stale = tmp.stat().st_mtime < now - STALE_BUILD
        except FileNotFoundError:  # finished (renamed into place) meanwhile
            continue
        if stale:
            shutil.rmtree(tmp, ignore_errors=True)
    return removed, freed
