"""The run directory: what a run leaves behind, written so a killed run never looks complete.

    RUN_DIR/
      task.json        the task as run, every default filled in
      manifest.json    versions, seed, data fingerprints, plugins, status
      history.jsonl    one line per logged step and evaluation
      metrics.json     {"validation": {...}, "test": {...}} for the splits given
      predictions/     SPLIT.jsonl: line, prediction and reference per row (validation: the best model's)
      report/          index.html and its SVG charts (engine.report.run_report)
      tensorboard/     event files, with training.report_to ["tensorboard"] (engine.training.trackers)
      model/           the trained model (written to model.tmp/, then renamed)
      checkpoints/     step-N/ (the newest K, for --resume) and best.safetensors; see engine.rundir.checkpoints
      .lock            held by the run in progress, so that a second run on the directory refuses at once

A command refuses an output directory before it touches it: a refusal leaves the directory (and its parents)
byte for byte as they were.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config.resume import RESUMABLE, changed_keys, flatten
from engine.errors import RunDirError
from engine.rundir.checkpoints import latest_checkpoint, read_trainer_state
from engine.rundir.lock import LOCK_FILE, RunLock
from engine.rundir.reading import read_json

MARKERS = ("manifest.json", "task.json")


def check_output_dir(path: Path, *, overwrite: bool, resume: bool, processes: int | None = None,
                     batch_size: int | None = None, task: dict[str, Any] | None = None,
                     inputs: Sequence[Path] = ()) -> None:
    """Refuse, before any work and without touching anything, to clobber an earlier run unless asked (and then
    only a run directory), to resume what cannot be resumed, or to write where nothing can be written.
    ``processes``, ``batch_size`` and ``task`` (the resolved task file, as JSON): a resume must use the processes
    and batch size its checkpoint was written with, and change only what ``engine.config.resume`` allows."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output_dir {path} is a file, not a directory; set output_dir to a directory "
                          "(e.g. --set output_dir=runs/new)")
    if resume:
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise RunDirError(
                f"--resume: {path} has no checkpoint to resume from (expected {path}/checkpoints/step-N/)")
        if processes is not None and batch_size is not None:
            check_resumable(checkpoint, processes, batch_size)
        if task is not None:
            check_same_task(path, task)
        return
    if path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"output directory {path} already holds files; pass --overwrite to replace it, --resume to continue "
                f"it, or set output_dir (e.g. --set output_dir=runs/new)"
            )
        if not any((path / marker).exists() for marker in MARKERS):
            raise RunDirError(
                f"--overwrite: {path} does not look like a run directory (no manifest.json); not deleting it")
        inside = [p for p in inputs if p.exists() and p.resolve().is_relative_to(path.resolve())]
        if inside:
            raise RunDirError(f"--overwrite would delete {inside[0]}, which this run reads: it lies inside output_dir "
                              f"{path}. Move it out, or set another output_dir")
    check_writable(path)


def check_writable(path: Path) -> None:
    """The nearest folder that exists on the way to ``path`` must be a folder we may create entries in."""
    import os

    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"output_dir {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"output_dir {path}: {existing} is not writable by this user; set output_dir to a folder "
                          "you can write to (e.g. --set output_dir=runs/new)")


def check_resumable(checkpoint: Path, processes: int, batch_size: int) -> None:
    """The sampler's global batches depend on the processes and the batch size: another count would resume at
    another place in the data."""
    saved = read_trainer_state(checkpoint)
    was = (saved.get("processes", 1), saved.get("batch_size", batch_size))
    if was != (processes, batch_size):
        raise RunDirError(f"--resume: {checkpoint} was written by {was[0]} process(es) with training.batch_size "
                          f"{was[1]}; this run has {processes} with {batch_size}. Resume with the same, or start a "
                          "new run.")


def check_same_task(path: Path, task: dict[str, Any]) -> None:
    """A resume continues the run its task.json describes: only the keys ``RESUMABLE`` names may differ."""
    saved = read_json(path / "task.json")
    if not isinstance(saved, dict):
        return  # a run killed before it wrote task.json: nothing to compare with
    _, unsafe = changed_keys(saved, task)
    if unsafe:
        old, new = flatten(saved), flatten(task)
        shown = "; ".join(f"{k}: {json.dumps(old.get(k))} in the run, {json.dumps(new.get(k))} now" for k in unsafe[:6])
        more = f" (and {len(unsafe) - 6} more)" if len(unsafe) > 6 else ""
        raise RunDirError(f"--resume: the task differs from the run in {path} on {shown}{more}. A resume continues "
                          "the same training: put these back, or start a new run (--overwrite, or another "
                          f"output_dir). A resume may change: {', '.join(RESUMABLE)}")


def claim_output_dir(path: Path, *, overwrite: bool, resume: bool, processes: int | None = None,
                     batch_size: int | None = None, task: dict[str, Any] | None = None,
                     inputs: Sequence[Path] = ()) -> RunLock:
    """Check the output directory, lock it, and check again under the lock (another run may have written there
    meanwhile). A refusal, at either check or at the lock, leaves ``path`` as it was."""
    check: dict[str, Any] = {"overwrite": overwrite, "resume": resume, "processes": processes,
                             "batch_size": batch_size, "task": task, "inputs": inputs}
    lock = RunLock(path)
    if path.is_dir():
        lock.check_free()  # a run in progress is the first thing to say, whatever else is wrong
    check_output_dir(path, **check)
    lock.acquire()
    try:
        check_output_dir(path, **check)
    except BaseException:
        lock.abandon()
        raise
    lock.sign()
    return lock


def prepare_output_dir(path: Path, *, overwrite: bool, resume: bool) -> None:
    """Create the run directory; an earlier run goes only now, once data and model have loaded without error."""
    check_output_dir(path, overwrite=overwrite, resume=resume)
    if not resume and overwrite and path.exists():
        for entry in path.iterdir():
            if entry.name == LOCK_FILE:  # ours: the run that holds it is this one
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)
