"""The Python API: ``train`` a task as `engine run` does (``runs``), ``load`` a trained model and predict or score
with it as `engine predict` and `engine evaluate` do (``predictor``), through the plugins ``plugins`` loads.

    result = engine.train("task.json", {"training.epochs": 1})
    predictor = engine.load(result.run_dir)
    predictor.predict("a text")  # {"text": ..., "label": ..., "scores": {...}}
"""

from engine.api.predictor import Predictor, load
from engine.api.runs import RunResult, train

__all__ = ["Predictor", "RunResult", "load", "train"]
