"""The classification task: labels in, label ids out, and back to names.

(Not named task.py: a submodule named like a hook would replace the hook function on the package once imported.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import DataError, Split
from engine.head import HeadOutput, HeadSpec
from engine_builtins.classification import ClassificationOptions
from engine_builtins.sentence_inputs import encode_texts, pad_batch

if TYPE_CHECKING:
    import torch

# torch is imported inside methods: building a task (as `engine validate` does) must stay fast.


class ClassificationTask:
    def __init__(self, options: ClassificationOptions) -> None:
        self.options = options
        self.labels: list[str] = list(options.labels or [])
        multi = options.multi_label
        self.monitor = "validation.f1_micro" if multi else "validation.accuracy"
        self.monitor_mode = "max"
        self.defaults: dict[str, Any] = {
            "head": "linear",
            "metrics": ["f1_micro", "f1_macro", "accuracy"] if multi else ["accuracy", "f1_macro", "precision_macro", "recall_macro"],
        }

    # --- labels ------------------------------------------------------------------------------------------------

    def _row_labels(self, split: Split, i: int) -> list[str]:
        value = split.rows[i].get("label")
        if value is None:
            raise DataError("missing label", *split.where(i))
        if self.options.multi_label:
            if isinstance(value, str):
                names = [v.strip() for v in value.split(self.options.label_separator) if v.strip()]
            elif isinstance(value, list):
                names = [str(v) for v in value]
            else:
                names = [str(value)]
            return names
        if isinstance(value, (list, dict)):
            raise DataError(f"expected one label, got {value!r} (set task.multi_label for several)", *split.where(i))
        return [str(value)]

    def fit(self, train: Split) -> None:
        if not self.labels:
            seen = {name for i in range(len(train)) for name in self._row_labels(train, i)}
            self.labels = sorted(seen, key=_natural)
            if len(self.labels) < 2:
                raise DataError(f"the training data has only one label ({', '.join(self.labels)}); a classifier needs two or more", train.source)
        self.check(train)

    def check(self, split: Split) -> None:
        known = set(self.labels)
        for i in range(len(split)):
            for name in self._row_labels(split, i):
                if name not in known:
                    raise DataError(f"unknown label {name!r}; expected one of: {', '.join(self.labels)}", *split.where(i))

    # --- features ----------------------------------------------------------------------------------------------

    def encode(self, split: Split, tokenizer: Any, max_length: int, labelled: bool = True) -> list[dict[str, Any]]:
        index = {name: i for i, name in enumerate(self.labels)}

        def label(i: int, row: dict[str, Any]) -> Any:
            names = self._row_labels(split, i)
            if self.options.multi_label:
                return [index[n] for n in names]
            return index[names[0]]

        return encode_texts(split, tokenizer, max_length, label if labelled else None)

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_batch(features, tokenizer)
        if "labels" in features[0]:
            if self.options.multi_label:
                labels = torch.zeros(len(features), len(self.labels))
                for row, f in enumerate(features):
                    labels[row, f["labels"]] = 1.0
                batch["labels"] = labels
            else:
                batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch

    def head_spec(self, hidden_size: int) -> HeadSpec:
        from torch.nn import functional as F

        loss = F.binary_cross_entropy_with_logits if self.options.multi_label else F.cross_entropy
        return HeadSpec(hidden_size, len(self.labels), "sequence", loss=loss, labels=list(self.labels))

    # --- outputs -----------------------------------------------------------------------------------------------

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        import torch

        logits = output.logits.float()
        probs = torch.sigmoid(logits) if self.options.multi_label else torch.softmax(logits, dim=-1)
        return probs.cpu().tolist()

    def predictions(self, split: Split, features: list[dict[str, Any]], outputs: list[Any]) -> list[Any]:
        by_row: list[Any] = [None] * len(split)
        for feature, probs in zip(features, outputs):
            by_row[feature["row"]] = probs
        result = []
        for probs in by_row:
            scores = {name: p for name, p in zip(self.labels, probs)}
            if self.options.multi_label:
                label: Any = [name for name, p in scores.items() if p >= self.options.threshold]
            else:
                label = self.labels[max(range(len(probs)), key=probs.__getitem__)]
            result.append({"label": label, "scores": scores})
        return result

    def references(self, split: Split) -> list[Any]:
        if self.options.multi_label:
            return [self._row_labels(split, i) for i in range(len(split))]
        return [self._row_labels(split, i)[0] for i in range(len(split))]

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        texts = {k: row[k] for k in ("text", "text_pair") if k in row}
        return {**texts, "label": prediction["label"], "scores": {k: round(v, 6) for k, v in prediction["scores"].items()}}

    # --- saving ------------------------------------------------------------------------------------------------

    def hf_config(self) -> dict[str, Any]:
        return {
            "id2label": dict(enumerate(self.labels)),
            "label2id": {name: i for i, name in enumerate(self.labels)},
            "problem_type": "multi_label_classification" if self.options.multi_label else "single_label_classification",
        }

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labels = list(state["labels"])


def _natural(name: str) -> tuple[int, float | str]:
    """Numeric labels sort as numbers ('2' before '10'), the rest alphabetically."""
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)
