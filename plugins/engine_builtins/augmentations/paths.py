"""Paths in augmentation options: relative ones are read from the task file's folder, as data paths are (the engine
passes it to the options' validators as ``info.context["base_dir"]``), else from the current directory (a task given
to ``engine.train`` as a dict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationInfo


def folder_path(value: str, base_dir: Any = None) -> Path:
    """An option's path: relative paths against ``base_dir`` when given, else against the current directory."""
    path = Path(value).expanduser()
    return Path(base_dir) / path if base_dir is not None and not path.is_absolute() else path


def from_task_folder(value: str | None, info: ValidationInfo) -> str | None:
    """A field validator's body: ``value`` read from the task file's folder (unchanged without one)."""
    base_dir = (info.context or {}).get("base_dir")
    if value is None or base_dir is None:
        return value
    return str(folder_path(value, base_dir))
