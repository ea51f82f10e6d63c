"""A task plugin written against engine 0.1, kept as it was: the ordinal task of examples/plugin before it moved to
``engine.Task`` and ``encode_batch``. No base class; ``encode(split, ...)`` returns a list of features; rows are
read with ``split.rows[i]`` and ``split.where(i)``. tests/plugins/test_legacy_plugin.py checks it still trains and
predicts, with a deprecation warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engine import DataError, Split, hookimpl
from engine.head import HeadOutput, HeadSpec

if TYPE_CHECKING:
    import torch


def cumulative_loss(logits: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` (batch, K-1) against ``rank > k`` for each threshold k."""
    import torch
    from torch.nn import functional as F

    thresholds = torch.arange(logits.shape[-1], device=logits.device)  # shape: (K-1,)
    targets = (ranks.unsqueeze(-1) > thresholds).to(logits.dtype)  # shape: (batch, K-1)
    return F.binary_cross_entropy_with_logits(logits, targets)


def level_probabilities(above: list[float]) -> list[float]:
    """P(rank = k) for every level from the K-1 (non-increasing) P(rank > k)."""
    upper = [1.0, *above]
    lower = [*above, 0.0]
    return [high - low for high, low in zip(upper, lower)]


def monotone(above: list[float]) -> list[float]:
    """The running minimum: P(rank > k) made non-increasing in k."""
    result, low = [], 1.0
    for p in above:
        low = min(low, p)
        result.append(low)
    return result


def _number(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


class OrdinalTask:
    def __init__(self, options: OrdinalOptions) -> None:
        self.options = options
        self.levels: list[str] = list(options.levels or [])
        self.monitor = "validation.loss"
        self.monitor_mode = "min"
        # What a task file gets unless it says otherwise: this plugin's own head and metrics.
        self.defaults: dict[str, Any] = {"head": "linear", "metrics": []}

    # --- levels ------------------------------------------------------------------------------------------------

    def _label(self, split: Split, i: int) -> str:
        value = split.rows[i].get("label")
        if value is None:
            raise DataError("missing label", *split.where(i))
        if isinstance(value, (list, dict)):
            raise DataError(f"expected one level, got {value!r}", *split.where(i))
        return str(value)

    def fit(self, train: Split) -> None:
        if not self.levels:
            seen = {self._label(train, i) for i in range(len(train))}
            numbers = {name: _number(name) for name in seen}
            words = sorted(name for name, number in numbers.items() if number is None)
            if words:
                raise DataError(
                    f"labels {', '.join(map(repr, words[:5]))} are not numbers, so their order is unknown; "
                    f"list the levels from lowest to highest in the task file: \"task\": {{\"name\": \"ordinal\", "
                    f"\"levels\": [...]}}", train.source,
                )
            self.levels = sorted(seen, key=float)
            if len(self.levels) < 2:
                raise DataError(f"the training data has only one level ({self.levels[0]}); ordinal needs two or more", train.source)
        self.check(train)

    def check(self, split: Split) -> None:
        known = set(self.levels)
        for i in range(len(split)):
            name = self._label(split, i)
            if name not in known:
                raise DataError(f"unknown level {name!r}; expected one of: {', '.join(self.levels)}", *split.where(i))

    def rank(self, name: str) -> int:
        return self.levels.index(name)

    # --- features ----------------------------------------------------------------------------------------------

    def encode(self, split: Split, tokenizer: Any, max_length: int, labelled: bool = True) -> list[dict[str, Any]]:
        rows = split.rows
        pairs = [i for i, r in enumerate(rows) if "text_pair" in r]
        if pairs and len(pairs) < len(rows):
            raise DataError("missing the second text of the pair", *split.where(next(i for i, r in enumerate(rows) if "text_pair" not in r)))
        pair = [str(r["text_pair"]) for r in rows] if pairs else None
        encoded = tokenizer([str(r["text"]) for r in rows], pair, truncation=True, max_length=max_length)
        index = {name: k for k, name in enumerate(self.levels)}
        features = []
        for i in range(len(rows)):
            feature: dict[str, Any] = {key: encoded[key][i] for key in encoded.keys()}  # noqa: SIM118 - 0.1 verbatim
            feature["row"] = i
            feature["length"] = len(feature["input_ids"])
            if labelled:
                feature["labels"] = index[self._label(split, i)]
            features.append(feature)
        return features

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        import torch

        width = max(f["length"] for f in features)
        batch: dict[str, torch.Tensor] = {}
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in features[0]:
                pad = tokenizer.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features], dtype=torch.long)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def head_spec(self, hidden_size: int) -> HeadSpec:
        thresholds = [f">{name}" for name in self.levels[:-1]]
        return HeadSpec(hidden_size, len(thresholds), "sequence", loss=cumulative_loss, labels=thresholds)

    # --- outputs -----------------------------------------------------------------------------------------------

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        import torch

        return torch.sigmoid(output.logits.float()).cpu().tolist()

    def predictions(self, split: Split, features: list[dict[str, Any]], outputs: list[Any]) -> list[Any]:
        by_row: list[Any] = [None] * len(split)
        for feature, above in zip(features, outputs):
            by_row[feature["row"]] = above
        result = []
        for above in by_row:
            above = monotone(above)
            rank = sum(p > self.options.threshold for p in above)
            scores = dict(zip(self.levels, level_probabilities(above)))
            result.append({"label": self.levels[rank], "rank": rank, "scores": scores})
        return result

    def references(self, split: Split) -> list[Any]:
        return [self._label(split, i) for i in range(len(split))]

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        texts: dict[str, Any] = {k: row[k] for k in ("text", "text_pair") if k in row}
        scores = {k: round(v, 6) for k, v in prediction["scores"].items()}
        return {**texts, "label": prediction["label"], "rank": prediction["rank"], "scores": scores}

    # --- saving ------------------------------------------------------------------------------------------------

    def hf_config(self) -> dict[str, Any]:
        return {}  # K-1 threshold outputs have no transformers counterpart

    def state_dict(self) -> dict[str, Any]:
        return {"levels": self.levels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.levels = list(state["levels"])


class OrdinalOptions(BaseModel):
    levels: list[str] | None = None
    threshold: float = 0.5


@hookimpl
def task(register: Any) -> None:
    register("legacy_ordinal", OrdinalTask, options=OrdinalOptions)
