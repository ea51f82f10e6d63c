"""The ordinal task: K ordered levels, learned as K-1 binary decisions "is the rank above level k?".

The head produces K-1 logits; the loss is the binary cross-entropy of each against ``rank > k`` (CORAL's
decomposition, Cao et al. 2020). At prediction the K-1 probabilities are made non-increasing (P(rank > k) cannot
grow with k) and the rank is the number of them above the threshold, so predictions are always consistent.

Everything a task must do is here, against engine's public API only: it subclasses ``engine.task.Task`` and
implements what is its own.
(Not named task.py: a submodule named like a hook would replace the hook function on the package once imported.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine import LINE, DataError, Split
from engine.head import HeadOutput, HeadSpec
from engine.task import Task

if TYPE_CHECKING:
    import torch

    from engine_ordinal import OrdinalOptions


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


class OrdinalTask(Task):
    def __init__(self, options: OrdinalOptions) -> None:
        self.options = options
        self.levels: list[str] = list(options.levels or [])
        self.monitor = "validation.qwk"
        self.monitor_mode = "max"
        # What a task file gets unless it says otherwise: this plugin's own head and metrics.
        self.defaults: dict[str, Any] = {"head": "attention_pooling", "metrics": ["qwk", "rank_mae"]}

    # --- levels ------------------------------------------------------------------------------------------------

    def _label(self, value: Any, line: int | None, source: str | None = None) -> str:
        if value is None:
            raise DataError("missing label", source, line)
        if isinstance(value, (list, dict)):
            raise DataError(f"expected one level, got {value!r}", source, line)
        return str(value)

    def _labels(self, split: Split) -> Iterator[tuple[str, int | None]]:
        """Every row's level and line, read column by column (a split may hold millions of rows)."""
        for value, line in split.values("label"):
            yield self._label(value, line, split.source), line

    def _rank(self, value: Any, line: int | None, source: str | None = None) -> int:
        """A row's rank (the index of its level); an unknown level is a DataError at the row."""
        name = self._label(value, line, source)
        if name not in self.levels:
            raise DataError(f"unknown level {name!r}; expected one of: {', '.join(self.levels)}", source, line)
        return self.levels.index(name)

    def fit(self, train: Split) -> None:
        if self.levels:  # declared in the task file: the training rows must use them
            self.check(train)
        else:
            seen = {name for name, _ in self._labels(train)}
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
                raise DataError(f"the training data has only one level ({self.levels[0]}); ordinal needs two or more",
                                train.source)

    def check(self, split: Split) -> None:
        for value, line in split.values("label"):
            self._rank(value, line, split.source)

    def rank(self, name: str) -> int:
        return self.levels.index(name)

    # --- features ----------------------------------------------------------------------------------------------

    def encode_batch(self, rows: dict[str, list[Any]], tokenizer: Any, max_length: int,
                     labelled: bool = True) -> dict[str, list[Any]]:
        lines = rows[LINE]
        pairs = rows.get("text_pair")
        if pairs is not None and None in pairs:
            raise DataError("missing the second text of the pair", line=lines[pairs.index(None)])
        encoded = tokenizer([str(t) for t in rows["text"]], [str(t) for t in pairs] if pairs is not None else None,
                            truncation=True, max_length=max_length)
        features = dict(encoded)  # one feature per row: no "row" column needed
        if labelled:
            features["labels"] = [self._rank(value, line) for value, line in zip(rows["label"], lines)]
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

    def predictions(self, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
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
        return [name for name, _ in self._labels(split)]

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
