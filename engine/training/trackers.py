"""Experiment trackers (``training.report_to``), through Accelerate's tracker support."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def trackers(names: list[str], run_dir: Path) -> list[Any]:
    """What ``Accelerator(log_with=...)`` takes for ``training.report_to``: TensorBoard writes to RUN_DIR/tensorboard/
    (flushed every 10 s, so a killed run leaves its curves); the others go by name, as Accelerate sets them up."""
    return [tensorboard(run_dir / "tensorboard") if name == "tensorboard" else name for name in names]


def tensorboard(directory: Path) -> Any:
    """Accelerate's TensorBoard tracker, writing the configuration into the run's own event file: as hparams (for
    TensorBoard's HParams tab) and as the task file's text, not into time-stamped folders beside it."""
    from accelerate.tracking import TensorBoardTracker

    class TensorBoard(TensorBoardTracker):
        def store_init_configuration(self, values: dict[str, Any]) -> None:
            from torch.utils.tensorboard.summary import hparams

            for summary in hparams(values, {}):
                self.writer.file_writer.add_summary(summary)
            # The resolved task file, as the --set keys that would reproduce it (indented: a code block).
            lines = [f"    {key}={_setting(value)}" for key, value in values.items()]
            self.writer.add_text("task.json", "\n".join(lines))
            self.writer.flush()

    return TensorBoard("", str(directory), flush_secs=10)


def flat_config(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The resolved task file as flat ``section.key`` values of the types every tracker stores (lists as JSON)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, default=str)
    return flat


def _setting(value: Any) -> str:
    """A flat value as ``--set`` takes it: JSON, with the lists and objects ``flat_config`` wrote as JSON unquoted."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            if isinstance(json.loads(value), (list, dict)):
                return value
        except ValueError:
            pass
    return json.dumps(value)
