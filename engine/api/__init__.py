"""The Python API: ``train`` a task as `engine run` does (``runs``), ``load`` a trained model and predict or score
with it as `engine predict` and `engine evaluate` do (``predictor``), ``export`` one task of a multi-task run as a
one-task model as `engine export` does (``exporting``), through the plugins ``plugins`` loads.

    result = engine.train("task.json", {"training.epochs": 1})
    predictor = engine.load(result.run_dir)
    predictor.predict("a text")  # {"text": ..., "label": ..., "scores": {...}}

Its names are imported when first used, so that the light parts (``tasks``, ``plugins``) import no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.api.exporting import Exported, export
    from engine.api.predictor import Predictor, load
    from engine.api.runs import RunResult, train

__all__ = ["Exported", "Predictor", "RunResult", "export", "load", "train"]

_HOMES = {"Predictor": "engine.api.predictor", "load": "engine.api.predictor", "RunResult": "engine.api.runs",
          "train": "engine.api.runs", "export": "engine.api.exporting", "Exported": "engine.api.exporting"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'engine.api' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
