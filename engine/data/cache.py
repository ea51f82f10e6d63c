"""The data cache: parsed data files and tokenized features as Arrow files, keyed by everything that made them.

A second run on the same data maps these files instead of reading and tokenizing again; every process of a node
maps the same files. An entry is a folder ``ROOT/KIND/KEY/`` with its Arrow files and ``info.json`` (what made it,
and each file's size and xxh3 checksum; written last: a folder without it is unfinished). The key hashes the inputs
(a data file's content, by the sha256 the run's manifest records (``engine.digests``); the format's options; the
task, its options and what it learned; the tokenizer's content; the maximum length; the engine's version), so any
change makes a new entry and nothing stale is ever read.

An entry is checked against its checksums before it is memory-mapped (once per process while its files are
unchanged), so a file cut short or overwritten never reaches Arrow's reader: the damaged entry is reported in one
warning, removed, and made again.

The root is ``$ENGINE_CACHE``, else ``$XDG_CACHE_HOME/engine``, else ``~/.cache/engine``. ``engine cache`` shows
its entries, their sizes and which are damaged; ``engine cache --clear`` empties it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import console, digests
from engine.errors import EngineError

if TYPE_CHECKING:
    import datasets

INFO = "info.json"
FILES = "files"  # info.json: {file name: {"bytes": size, CHECKSUM: hex digest}} of every other file in the entry
CHECKSUM = "xxh3_128"


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
    """What identifies a data file (or folder) by content: the sha256 the run's manifest records, computed once per
    process (``engine.digests``; size and modification time under ``ENGINE_CACHE_TRUST_MTIME``)."""
    return digests.describe(path)


# --- checksums ---------------------------------------------------------------------------------------------------


def checksum(path: Path) -> str:
    """xxh3 (128 bits) of a file's bytes, streamed: about as fast as reading the file from the page cache, a fifth
    of sha256's cost (bench/results/cache_hashing.md). It guards against damage (a disk that filled, a copy cut
    short, a stray write), not against tampering."""
    import xxhash  # a dependency of datasets

    return digests.feed(xxhash.xxh3_128(), path).hexdigest()


def record(folder: Path) -> dict[str, dict[str, Any]]:
    """The size and checksum of every file in an entry's folder but ``info.json``: what ``damage`` checks."""
    return {f.name: {"bytes": f.stat().st_size, CHECKSUM: checksum(f)}
            for f in sorted(folder.iterdir()) if f.is_file() and f.name != INFO}


_intact: dict[str, dict[str, tuple[int, ...]]] = {}  # entry -> its files' stamps when found intact, in this process


def damage(entry: Path) -> str | None:
    """What is wrong with an entry (a file missing, shorter or longer than written, other bytes than written, an
    unreadable ``info.json``), or None when it is intact. Reads every file, once per process while they are
    unchanged (``engine.digests.stamp``)."""
    started = time.time_ns()
    try:
        stats = {f.name: f.stat() for f in entry.iterdir() if f.name != INFO}
    except OSError as exc:
        return f"it cannot be read: {exc}"
    stamps = {name: digests.stamp(stat) for name, stat in stats.items()}
    if _intact.get(str(entry)) == stamps:
        return None
    try:
        info = json.loads((entry / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"its {INFO} cannot be read: {exc}"
    written = info.get(FILES) if isinstance(info, dict) else None
    if not isinstance(written, dict) or not all(
            isinstance(w, dict) and isinstance(w.get("bytes"), int) and isinstance(w.get(CHECKSUM), str)
            for w in written.values()):
        return f"its {INFO} records no checksums"
    sizes = {name: stat.st_size for name, stat in stats.items()}
    extra = sorted(set(sizes) - set(written))
    if extra:
        return f"it holds {extra[0]}, which it did not write"
    for name, expected in written.items():
        if name not in sizes:
            return f"{name} is missing"
        if sizes[name] != expected.get("bytes"):
            return f"{name} has {sizes[name]:,} bytes where {expected['bytes']:,} were written"
        if checksum(entry / name) != expected[CHECKSUM]:
            return f"{name} holds other bytes than were written: its checksum differs"
    if all(digests.settled(stat, started) for stat in stats.values()):
        _intact[str(entry)] = stamps
    return None


# --- entries -----------------------------------------------------------------------------------------------------


def lookup(kind: str, key: str) -> Path | None:
    """The finished, intact entry for ``key``, marked as used now; None if there is none. A damaged entry is
    reported, removed, and None returned: the caller makes it again."""
    entry = cache_root() / kind / key
    info = entry / INFO
    if not info.is_file():
        return None
    problem = damage(entry)
    if problem is not None:
        remove(entry, problem)
        console.warn(f"data cache entry {entry} is damaged: {problem}. Removed; making it again")
        return None
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(info)
    return entry


def remove(entry: Path, problem: str) -> None:
    """Take a damaged entry out of the cache: renamed aside first, so no other process maps it half-deleted."""
    aside = entry.parent / f".{entry.name}.{os.getpid()}.damaged.tmp"
    try:
        entry.rename(aside)
    except FileNotFoundError:  # removed meanwhile by another process
        return
    except OSError as exc:
        raise EngineError(f"data cache entry {entry} is damaged: {problem}. It cannot be removed "
                          f"({exc.strerror}): remove that folder, or set ENGINE_CACHE to another cache") from None
    shutil.rmtree(aside, ignore_errors=True)


def build(kind: str, key: str, make: Callable[[Path], dict[str, Any]]) -> Path:
    """Make an entry: ``make(folder)`` writes its Arrow files and returns a description; their checksums are
    recorded and the folder is renamed into place when complete, so a killed build leaves no entry (and another
    process building the same key at the same time loses nothing: the first to finish wins, the other's copy is
    dropped)."""
    folder = cache_root() / kind
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    entry = folder / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        info = make(tmp)
        text = json.dumps({"kind": kind, "created": time.time(), **info, FILES: record(tmp)}, indent=1, default=str)
        (tmp / INFO).write_text(text, encoding="utf-8")
        try:
            tmp.rename(entry)
        except OSError:  # built meanwhile by another process
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise EngineError(f"cannot write to the data cache at {cache_root()}: {exc.strerror}. Free some space "
                              "(engine cache --clear), or set ENGINE_CACHE to a folder on another disk") from None
        raise
    return entry


def load(entry: Path, name: str) -> datasets.Dataset:
    """The Arrow files of ``name`` in an entry (one, or the shards of several tokenizing processes), memory-mapped.
    ``lookup`` and ``build`` give entries whose files are as written."""
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
    info: dict[str, Any]  # empty when info.json cannot be read (a damaged entry)


def entries() -> list[Entry]:
    """Every finished entry (damaged ones too: see ``damage``), most recently used first."""
    found = []
    root = cache_root()
    for info in root.glob(f"*/*/{INFO}"):
        entry = info.parent
        try:
            size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
            last_used = info.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        found.append(Entry(entry.parent.name, entry.name, entry, size, last_used,
                           meta if isinstance(meta, dict) else {}))
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
