"""manifest.json: what ran (versions, command, seed, data fingerprints, plugins) and how it ended."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any


def fingerprint(path: Path) -> dict[str, Any]:
    """sha256 and size of a data file, or of every file in a data folder."""
    if path.is_dir():
        digest = hashlib.sha256()
        size = 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(_sha256(file).encode())
            size += file.stat().st_size
        return {"path": str(path), "sha256": digest.hexdigest(), "bytes": size}
    if path.is_file():
        return {"path": str(path), "sha256": _sha256(path), "bytes": path.stat().st_size}
    return {"path": str(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    names = ["engine", "torch", "transformers", "accelerate", "datasets", "pluggy", "pydantic", *extra]
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed: not recorded
            found[name] = metadata.version(name)
    return found


def manifest(*, seed: int, data_files: dict[str, Path], plugins: list[dict[str, Any]], status: str,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions(),
        "seed": seed,
        "data": {split: fingerprint(path) for split, path in data_files.items()},
        "plugins": plugins,
        **(extra or {}),
    }
