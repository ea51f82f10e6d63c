"""manifest.json: what ran (versions, command, seed, data fingerprints, plugins, what augmentation made of the
training rows) and how it ended.

A data file's fingerprint is the one the data cache keys its rows by (``engine.digests``): read once per process."""

from __future__ import annotations

import contextlib
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from engine import digests


def fingerprint(path: Path) -> dict[str, Any]:
    """sha256 and size of a data file, or of every file in a data folder (``engine.digests.describe``)."""
    return digests.describe(path)


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    names = ["engine", "torch", "transformers", "accelerate", "datasets", "pluggy", "pydantic", *extra]
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):  # not installed: not recorded
            found[name] = metadata.version(name)
    return found


def manifest(*, seed: int, data_files: dict[str, Path], plugins: list[dict[str, Any]], status: str,
             augmentation: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest's record. ``augmentation``: per augmentation, in the order they ran, ``{"name", "rows_in",
    "rows_out", "produced", "examples"}`` (``engine.data.augmentation.AugmentationSummary.to_dict``; a streamed
    split's also ``"streamed": true``: counted over its first rows); left out of a run without augmentation."""
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
        **({"augmentation": augmentation} if augmentation else {}),
        **(extra or {}),
    }
