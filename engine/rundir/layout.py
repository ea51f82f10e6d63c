"""The run directory: what a run leaves behind, written so a killed run never looks complete.

    RUN_DIR/
      task.json        the task as run, every default filled in
      manifest.json    versions, seed, data fingerprints, plugins, status
      history.jsonl    one line per logged step and evaluation
      metrics.json     {"validation": {...}, "test": {...}} for the splits given
      predictions/     SPLIT.jsonl: line, prediction and reference per row (validation: the best model's)
      report/          index.html and its SVG charts (engine.report)
      tensorboard/     event files, with training.report_to ["tensorboard"] (engine.trackers)
      model/           the trained model (written to model.tmp/, then renamed)
      checkpoints/     step-N/ (the newest K, for --resume) and best.safetensors; see engine.checkpoints
      .lock            held by the run in progress, so that a second run on the directory refuses at once
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.errors import RunDirError

MARKERS = ("manifest.json", "task.json")
LOCK_FILE = ".lock"


def check_run_dir(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse, before any work, to clobber an earlier run unless asked (and then only a run directory)."""
    if resume:
        from engine.rundir.checkpoints import latest_checkpoint

        if latest_checkpoint(path) is None:
            raise RunDirError(
                f"--resume: {path} has no checkpoint to resume from (expected {path}/checkpoints/step-N/)")
        return
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output_dir {path} is a file, not a directory")
    if path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"output directory {path} already holds files; pass --overwrite to replace it, --resume to continue "
                f"it, or set output_dir (e.g. --set output_dir=runs/new)"
            )
        if not any((path / marker).exists() for marker in MARKERS):
            raise RunDirError(
                f"--overwrite: {path} does not look like a run directory (no manifest.json); not deleting it")


def prepare_run_dir(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Create the run directory; an earlier run goes only now, once data and model have loaded without error."""
    check_run_dir(path, overwrite=overwrite, resume=resume)
    if not resume and overwrite and path.exists():
        for entry in path.iterdir():
            if entry.name == LOCK_FILE:  # ours: the run that holds it is this one
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)


class RunLock:
    """An exclusive hold on a run directory while a run (or a resume) writes to it.

    ``flock`` on ``RUN_DIR/.lock``: the kernel lets go when the holder dies, SIGKILL included, so a lock left by a
    killed run is simply taken over. The file names its holder (pid, host, start) for the message a second run
    gets. Where the file system has no ``flock`` (some network file systems), a holder on this host is checked by
    its pid, and one on another host is trusted until the file is deleted.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _flock(fd) or (not _HAS_FLOCK and _holder_alive(self._holder())):
                raise RunDirError(self._busy_message())
        except BaseException:
            os.close(fd)
            raise
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self.fd = fd

    def release(self) -> None:
        # The file stays (deleting a lock file others may have open races with them); the lock goes with the fd.
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def _busy_message(self) -> str:
        holder = self._holder()
        who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
        return (f"output directory {self.run_dir} is in use by another run ({who}); wait for it to finish, or set "
                f"another output_dir (e.g. --set output_dir=runs/new). If that run is gone, delete {self.path}.")


try:
    import fcntl

    _HAS_FLOCK = True
except ImportError:  # Windows
    _HAS_FLOCK = False


def _flock(fd: int) -> bool:
    """Try to lock ``fd`` without waiting: False when another process holds it."""
    global _HAS_FLOCK
    if not _HAS_FLOCK:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # no flock on this file system: fall back to the holder's pid
        _HAS_FLOCK = False
    return True


def _holder_alive(holder: dict[str, Any]) -> bool:
    if not holder.get("pid"):
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


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
