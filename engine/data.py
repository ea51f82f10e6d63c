"""What a data format hands the engine: named splits of rows, each row a dict, each split knowing its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPLITS = ("train", "validation", "test")
LINE = "_line"  # the row's line (or record) number in its source file, for messages


class DataOptions(BaseModel):
    """Keys every data format shares; a format's options model subclasses this one."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = Field(None, description="Data format; default: from the training file's extension.")
    train: str | None = Field(None, description="Training data: a file, or a folder for directory formats.")
    validation: str | None = Field(None, description="Validation data, evaluated after every epoch.")
    test: str | None = Field(None, description="Test data, evaluated once at the end with the best model.")
    encoding: str = Field("utf-8", description="Text encoding of the files, e.g. 'latin-1'.")
    labels_required: bool = Field(True, description="False when reading inputs to predict: labels may be absent.")

    def files(self) -> dict[str, str]:
        return {name: value for name in SPLITS if (value := getattr(self, name))}


@dataclass
class Split:
    """One split's rows. ``rows[i][LINE]``, where present, locates row ``i`` in ``source``."""

    name: str
    rows: list[dict[str, Any]]
    source: str
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, index: int) -> tuple[str, int | None]:
        """(file, line) of a row, for error messages."""
        return self.source, self.rows[index].get(LINE)


def resolve_path(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
