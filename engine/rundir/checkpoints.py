"""Training checkpoints: written whole or not at all, the newest K kept, the newest complete one found again.

    RUN_DIR/checkpoints/
      step-00000120/        Accelerate state (model, optimizer, scheduler, every process's RNGs, its step counter)
        trainer_state.json  where the loop stands (epoch, batches into it, steps...) and the callbacks' states
      best.safetensors      the best weights so far, by the monitored metric

A checkpoint is written as ``step-N.tmp/`` and renamed to ``step-N/`` only once every file in it is written, so a
process killed at any moment (SIGKILL included) leaves either the new checkpoint or none of it; older checkpoints
are renamed to ``*.deleting`` before they are removed, so a half-deleted one is never taken for a whole one.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from engine.atomic import write_json
from engine.errors import RunDirError

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Whole checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if (m := _NAME.match(p.name)) and (p / STATE_FILE).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(accelerator: Any, run_dir: Path, step: int, trainer_state: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step-N/`` (a collective call: every process writes its part), then keep the newest
    ``keep``."""
    final = checkpoint_dir(run_dir) / f"step-{step:08d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process's RNG file is in before the checkpoint counts as whole
    if accelerator.is_main_process:
        write_json(tmp / STATE_FILE, trainer_state)  # written last: its presence marks a whole checkpoint
        if final.exists():  # the same step saved again (an epoch end right after a step checkpoint)
            _remove(final)
        tmp.rename(final)
        for old in complete_checkpoints(run_dir)[:-keep]:
            _remove(old)
    accelerator.wait_for_everyone()
    return final


def read_trainer_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"--resume: {path / STATE_FILE} cannot be read ({exc}); delete {path} to resume from an "
                          "older checkpoint") from None


def clean_partial(run_dir: Path) -> None:
    """Remove what a killed run left half-written (``*.tmp``, ``*.deleting``)."""
    folder = checkpoint_dir(run_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix in (".tmp", ".deleting") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _remove(path: Path) -> None:
    doomed = path.with_name(path.name + ".deleting")
    path.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
