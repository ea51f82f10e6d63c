"""The regression task: numeric targets in, normalized for the head, and back to the original scale.

(Not named task.py: a submodule named like a hook would replace the hook function on the package once imported.)
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any

from engine import LINE, DataError, Split
from engine.head import HeadOutput, HeadSpec
from engine.task import Task
from engine_builtins import published
from engine_builtins.optimizers import SENTENCE_LAYER_DECAY
from engine_builtins.regression.options import RegressionOptions
from engine_builtins.sentence_inputs import encode_texts, pad_batch

if TYPE_CHECKING:
    import torch

# torch is imported inside methods: building a task (as `engine validate` does) must stay fast.

METRICS = ["pearson", "spearman", "mse", "rmse", "mae", "r2"]


class RegressionTask(Task):
    def __init__(self, options: RegressionOptions) -> None:
        self.options = options
        #: Target names, one per output; known once ``fit`` (or ``load_state_dict``) has run.
        self.targets: list[str] = list(options.targets or [])
        #: Normalized target = (target - shift) / scale, per target; identity until ``fit``.
        self.shift: list[float] = []
        self.scale: list[float] = []
        #: Whether rows are text pairs, so a model trained on pairs refuses single texts and vice versa.
        self.pair: bool | None = None
        self.monitor = "validation.pearson"
        self.monitor_mode = "max"
        self.defaults: dict[str, Any] = {"head": "linear", "metrics": list(METRICS),
                                         "optimizer": {"name": "adamw", "layer_decay": SENTENCE_LAYER_DECAY}}

    # --- targets -----------------------------------------------------------------------------------------------

    def _targets(self, value: Any, line: int | None, source: str | None = None) -> list[float]:
        """A row's targets as finite floats; anything else is a DataError pointing at the row."""
        if value is None:
            raise DataError("missing target", source, line)
        values = value if isinstance(value, list) else [value]
        if self.targets and len(values) != len(self.targets):
            raise DataError(
                f"expected {len(self.targets)} target{'s' if len(self.targets) != 1 else ''} "
                f"({', '.join(self.targets)}), got {len(values)}", source, line,
            )
        numbers = []
        for j, item in enumerate(values):
            what = f"target {self.targets[j]!r}" if len(self.targets) > 1 else "target"
            number = _number(item)
            if number is None:
                raise DataError(f"{what} is not a number: {item!r}", source, line)
            if not math.isfinite(number):
                raise DataError(f"{what} is {item!r}; expected a finite number", source, line)
            bounds = self.options.bounds
            if bounds is not None and not bounds[0] <= number <= bounds[1]:
                raise DataError(f"{what} {number:g} is outside task.bounds [{bounds[0]:g}, {bounds[1]:g}]",
                                source, line)
            numbers.append(number)
        return numbers

    def _split_targets(self, split: Split) -> list[list[float]]:
        return [self._targets(value, line, split.source) for value, line in split.values("label")]

    def fit(self, train: Split) -> None:
        first, line = next(train.values("label"), (None, None))
        width = len(first) if isinstance(first, list) else 1
        if not self.targets:
            columns = train.info.get("label_columns") or []
            self.targets = (["value"] if width == 1 else
                            list(columns) if len(columns) == width else [f"target_{j}" for j in range(width)])
        elif len(self.targets) != width and first is not None:
            raise DataError(
                f"task.targets names {len(self.targets)} target(s) ({', '.join(self.targets)}), but the rows have "
                f"{width}; give one name per data.label column", train.source, line,
            )
        self.pair = "text_pair" in train.columns
        columns = list(zip(*self._split_targets(train)))
        self.shift, self.scale = [], []
        for values in columns:
            shift, scale = _normalizer(self.options.normalize, values)
            self.shift.append(shift)
            self.scale.append(scale)

    def check(self, split: Split) -> None:
        self._split_targets(split)

    # --- features ----------------------------------------------------------------------------------------------

    def encode_batch(self, rows: dict[str, list[Any]], tokenizer: Any, max_length: int,
                     labelled: bool = True) -> dict[str, list[Any]]:
        pair = "text_pair" in rows
        if self.pair is not None and pair != self.pair:
            trained = "pairs of texts" if self.pair else "single texts"
            given = "a pair of texts" if pair else "one text"
            raise DataError(f"this model was trained on {trained}, but each row here has {given} (see data.text)",
                            line=rows[LINE][0])
        features = encode_texts(rows, tokenizer, max_length)
        if labelled:
            features["labels"] = [[(v - s) / c for v, s, c in zip(self._targets(value, line), self.shift, self.scale)]
                                  for value, line in zip(rows["label"], rows[LINE])]
        return features

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_batch(features, tokenizer)
        if "labels" in features[0]:
            # shape: (batch, targets)
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        return batch

    def head_spec(self, hidden_size: int) -> HeadSpec:
        return HeadSpec(hidden_size, len(self.targets), "sequence", loss=partial(regression_loss, self.options.loss,
                        self.options.huber_delta), labels=list(self.targets))

    # --- outputs -----------------------------------------------------------------------------------------------

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        return output.logits.float().cpu().tolist()

    def predictions(self, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
        by_row: list[Any] = [None] * len(split)
        for feature, raw in zip(features, outputs):
            by_row[feature["row"]] = self.denormalize(raw)
        return by_row

    def denormalize(self, raw: list[float]) -> list[float]:
        """Head outputs back on the targets' scale, clamped to ``bounds``."""
        values = [r * c + s for r, s, c in zip(raw, self.shift, self.scale)]
        if self.options.bounds is not None:
            low, high = self.options.bounds
            values = [min(max(v, low), high) for v in values]
        return values

    baseline_name = "the training data's mean"
    published_scores = published.REGRESSION

    def baseline(self, train: Split, split: Split) -> list[Any]:
        """Every row: each target's mean over the training rows."""
        targets = self._split_targets(train)
        means = [math.fsum(row[i] for row in targets) / max(len(targets), 1) for i in range(len(self.targets))]
        return [list(means) for _ in range(len(split))]

    def references(self, split: Split) -> list[Any]:
        return self._split_targets(split)

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        texts: dict[str, Any] = {k: row[k] for k in ("text", "text_pair") if k in row}
        if len(self.targets) == 1:
            return {**texts, "value": round(prediction[0], 6)}
        return {**texts, "values": {name: round(v, 6) for name, v in zip(self.targets, prediction)}}

    def report(self, report: Any, split: str, predictions: list[Any], references: list[Any]) -> None:
        from engine_builtins.regression.report import regression_report

        regression_report(report, split, predictions, references, self.targets)

    # --- saving ------------------------------------------------------------------------------------------------

    def hf_config(self) -> dict[str, Any]:
        # Plain transformers gives the head's raw outputs; this key says how to turn them into engine's predictions.
        return {
            "problem_type": "regression",
            "id2label": dict(enumerate(self.targets)),
            "label2id": {name: i for i, name in enumerate(self.targets)},
            "engine_regression": {
                **self.state_dict(),
                "inverse": "value[i] = logits[:, i] * scale[i] + shift[i], then clamped to bounds when set",
            },
        }

    def state_dict(self) -> dict[str, Any]:
        return {"targets": self.targets, "normalize": self.options.normalize, "shift": self.shift,
                "scale": self.scale, "bounds": list(self.options.bounds) if self.options.bounds else None,
                "pair": self.pair}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.targets = list(state["targets"])
        self.shift = [float(v) for v in state["shift"]]
        self.scale = [float(v) for v in state["scale"]]
        self.pair = state.get("pair")


def regression_loss(kind: str, delta: float, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE, Huber or L1 between head outputs and (normalized) targets, both of shape (batch, targets)."""
    from torch.nn import functional as F

    predicted = predicted.float()
    if kind == "huber":
        return F.huber_loss(predicted, target, delta=delta)
    if kind == "l1":
        return F.l1_loss(predicted, target)
    return F.mse_loss(predicted, target)


def _number(value: Any) -> float | None:
    """A target as a float: numbers as they are, strings parsed; booleans and anything else are not targets."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _normalizer(how: str, values: tuple[float, ...]) -> tuple[float, float]:
    """(shift, scale) fitted on one target's training values."""
    if how == "standardize":
        mean = math.fsum(values) / len(values)
        shift, scale = mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    elif how == "minmax":
        shift, scale = min(values), max(values) - min(values)
    else:
        return 0.0, 1.0
    # A constant target has no spread to divide by; leaving it unscaled keeps the mapping invertible.
    return shift, scale if scale > 0 else 1.0
