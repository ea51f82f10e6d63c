"""Reading a run directory back: its JSON files, its history, whether it is a run directory at all. What the report,
`engine compare` and `engine report` read, written as ``engine.rundir.layout`` describes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import RunDirError


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file; a last line cut short by a kill is skipped."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
    except OSError:
        return


def read_history(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, evaluation records) of history.jsonl."""
    train: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    for record in read_jsonl(run_dir / "history.jsonl"):
        (evaluations if record.get("event") == "evaluate" else train).append(record)
    return train, evaluations


def read_task_json(run_dir: Path) -> dict[str, Any]:
    """The run's task.json (the task as run); a RunDirError when ``run_dir`` is not a run directory: a run writes
    task.json and manifest.json (with its status) when it starts, so a folder holding a user's own task.json is
    not taken for one."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    task = read_json(run_dir / "task.json")
    manifest = read_json(run_dir / "manifest.json")
    if not isinstance(task, dict) or not isinstance(manifest, dict) or "status" not in manifest:
        missing = "task.json" if not isinstance(task, dict) else "manifest.json"
        raise RunDirError(f"{run_dir}: not a run directory (expected {run_dir / missing}, which engine run writes "
                          "when a run starts)")
    return task


def recorded_plugins(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The plugins of the run, by name, as its manifest.json recorded them ({} without one)."""
    manifest = read_json(run_dir / "manifest.json")
    plugins = manifest.get("plugins", []) if isinstance(manifest, dict) else []
    return {p["name"]: p for p in plugins if isinstance(p, dict) and "name" in p}
