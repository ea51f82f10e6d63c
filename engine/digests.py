"""What identifies a data file by its content: its sha256, read once per process.

The data cache keys a file's parsed rows by it and the run's manifest records it; both ask here, so they cannot
disagree. A file is read once per process: the digest is kept for as long as the file's path, size, inode,
modification and change times stay the same (a write or ``touch`` changes the change time, which no tool can set
back), so the manifest's second look costs nothing. As in git's index, a file changed less than ``RACY`` before it
was read is not remembered: its change time has the kernel clock's coarse grain, so a write in the same tick would
leave it as it was.

``ENGINE_CACHE_TRUST_MTIME=1`` identifies files by size and modification time instead, without reading them, for
data so large that hashing it costs too much (a 1 GB file: 1.3 s from the page cache, 2.3 s from the disk, on one
core of a shared machine; bench/results/cache_hashing.md). An edit that keeps the size and restores the
modification time (``touch -r``, ``cp -p`` of a same-size file) then goes unnoticed, and the manifest records no
sha256.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Protocol, TypeVar


class Digest(Protocol):
    def update(self, data: Any, /) -> None: ...


T = TypeVar("T", bound=Digest)

TRUST_MTIME = "ENGINE_CACHE_TRUST_MTIME"
BLOCK = 1 << 20  # bytes read at a time
RACY = 1_000_000_000  # ns: a file changed this shortly before it was hashed is hashed again next time

_known: dict[str, tuple[tuple[int, ...], str]] = {}  # resolved path -> (its stat when hashed, sha256)


def trust_mtime() -> bool:
    """Whether the user chose to identify data files by size and modification time (``ENGINE_CACHE_TRUST_MTIME``)."""
    return os.environ.get(TRUST_MTIME, "").strip().lower() in ("1", "true", "yes")


def stamp(stat: os.stat_result) -> tuple[int, ...]:
    """What changes when a file's content does (size, modification and change times, inode, device)."""
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev


def settled(stat: os.stat_result, started: int) -> bool:
    """Whether a file read from ``started`` (``time.time_ns()``) on was last changed clearly before: only then
    does its ``stamp`` tell a later change apart (see ``RACY``)."""
    return stat.st_ctime_ns < started - RACY


def feed(digest: T, path: str | Path) -> T:
    """``digest`` (a hashlib-like object) updated with a file's bytes, read a block at a time into one buffer."""
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            digest.update(view[:count])
    return digest


def sha256(path: Path) -> str:
    """The sha256 of a file's bytes, streamed; read once per process while the file is unchanged."""
    resolved = str(path.resolve())
    started = time.time_ns()
    stat = os.stat(resolved)
    known = _known.get(resolved)
    if known is not None and known[0] == stamp(stat):
        return known[1]
    digest = feed(hashlib.sha256(), resolved)
    if settled(stat, started):  # a file changed while read differs from its stamp next time
        _known[resolved] = (stamp(stat), digest.hexdigest())
    return digest.hexdigest()


def describe(path: Path) -> dict[str, Any]:
    """What identifies a data file, or a folder (every file below it): ``{"path", "sha256", "bytes"}``;
    ``{"path", "bytes", "mtime_ns"}`` under ``ENGINE_CACHE_TRUST_MTIME``; ``{"path"}`` for a path that does not
    exist."""
    path = path.resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    if not files and not path.is_dir():
        return {"path": str(path)}
    names = [str(p.relative_to(path)) if p != path else "" for p in files]
    stats = [p.stat() for p in files]
    size = sum(s.st_size for s in stats)
    if trust_mtime():
        mtimes = [s.st_mtime_ns for s in stats]
        return {"path": str(path), "bytes": size,
                "mtime_ns": mtimes[0] if not path.is_dir() else dict(zip(names, mtimes))}
    if not path.is_dir():
        return {"path": str(path), "sha256": sha256(path), "bytes": size}
    digest = hashlib.sha256()
    for name, file in zip(names, files):
        digest.update(name.encode())
        digest.update(sha256(file).encode())
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": size}
