"""The run-directory lock: one run (or resume) writes to a directory at a time."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import RunDirError

LOCK_FILE = ".lock"


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
        self.created: list[Path] = []  # what acquire made (folders, the lock file), newest last: abandon removes it
        self.signed = False  # sign() wrote this process into the lock file: the claim on the directory is complete

    def acquire(self) -> None:
        """Hold the lock, creating the directory and the lock file if they are missing (and only then); writes
        nothing into an existing lock file until ``sign``. A lock held by another run is a RunDirError, with
        whatever this call created removed again."""
        missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.created = list(reversed(missing))
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self.abandon()
            raise RunDirError(f"output_dir {self.run_dir}: cannot create it or its lock file "
                              f"({exc.strerror})") from None
        if not existed:
            self.created.append(self.path)
        self.fd = fd
        if not _flock(fd) or (not _HAS_FLOCK and _holder_alive(self._holder())):
            message = self._busy_message()
            self.abandon()
            raise RunDirError(message)

    def check_free(self) -> None:
        """A RunDirError naming the holder when another run holds the lock; creates and changes nothing."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:  # no lock file (or not ours to open): nobody holds it, or acquire will say why
            return
        try:
            if not _flock(fd) or (not _HAS_FLOCK and _holder_alive(self._holder())):
                raise RunDirError(self._busy_message())
        finally:
            os.close(fd)  # closing lets go of a flock this probe took

    def sign(self) -> None:
        """Write this process's identity into the held lock file, for the message a second run gets."""
        assert self.fd is not None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(me) + "\n").encode(), 0)
        self.signed = True

    def release(self) -> None:
        """Let go after a run. The file stays, empty (deleting a lock file others may have open races with them);
        the lock goes with the file descriptor. A lock never signed is abandoned instead."""
        if self.fd is not None and not self.signed:
            self.abandon()
        elif self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None

    def abandon(self) -> None:
        """Let go without a trace: close, and remove the lock file and folders that ``acquire`` created (a lock file
        that was there before is left empty, as ``release`` leaves it)."""
        if self.fd is not None:
            if self.signed and self.path not in self.created:
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None
            self.signed = False
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                path.unlink() if path == self.path else path.rmdir()
        self.created = []

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
