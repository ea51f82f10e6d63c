"""The classification task: labels in, label ids out, and back to names.

(Not named task.py: a submodule named like a hook would replace the hook function on the package once imported.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine import LINE, DataError, Split
from engine.head import HeadOutput, HeadSpec
from engine.task import Task
from engine_builtins import published
from engine_builtins.classification.options import ClassificationOptions
from engine_builtins.optimizers import SENTENCE_LAYER_DECAY
from engine_builtins.sentence_inputs import encode_texts, pad_batch

if TYPE_CHECKING:
    import torch

# torch is imported inside methods: building a task (as `engine validate` does) must stay fast.


class ClassificationTask(Task):
    def __init__(self, options: ClassificationOptions) -> None:
        self.options = options
        self.labels: list[str] = list(options.labels or [])
        multi = options.multi_label
        self.monitor = "validation.f1_micro" if multi else "validation.accuracy"
        self.monitor_mode = "max"
        self.defaults: dict[str, Any] = {
            "head": "linear",
            "metrics": (["f1_micro", "f1_macro", "accuracy"] if multi
                        else ["accuracy", "f1_macro", "precision_macro", "recall_macro"]),
            "optimizer": {"name": "adamw", "layer_decay": SENTENCE_LAYER_DECAY},
        }

    # --- labels ------------------------------------------------------------------------------------------------

    def _names(self, value: Any, line: int | None, source: str | None = None) -> list[str]:
        """A row's label names (one, or several for multi-label)."""
        if value is None:
            raise DataError("missing label", source, line)
        if self.options.multi_label:
            if isinstance(value, str):
                return [v.strip() for v in value.split(self.options.label_separator) if v.strip()]
            if isinstance(value, list):
                return [str(v) for v in value]
            return [str(value)]
        if isinstance(value, (list, dict)):
            raise DataError(f"expected one label, got {value!r} (set task.multi_label for several)", source, line)
        return [str(value)]

    def _split_names(self, split: Split) -> Iterator[tuple[list[str], int | None]]:
        for value, line in split.values("label"):
            yield self._names(value, line, split.source), line

    @property
    def _index(self) -> dict[str, int]:
        """Label name -> id, made again only when ``labels`` is replaced (``fit``, ``load_state_dict``)."""
        if getattr(self, "_index_of", None) is not self.labels:
            self._index_of, self._index_cache = self.labels, {name: i for i, name in enumerate(self.labels)}
        return self._index_cache

    def _ids(self, value: Any, line: int | None, source: str | None = None) -> Any:
        """A row's label id (a list of ids for multi-label); an unknown label is a DataError at the row."""
        index = self._index
        names = self._names(value, line, source)
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(f"unknown label {unknown[0]!r}; expected one of: {', '.join(self.labels)}", source, line)
        return [index[n] for n in names] if self.options.multi_label else index[names[0]]

    def fit(self, train: Split) -> None:
        if self.labels:  # declared in the task file: the training rows must use them
            self.check(train)
            return
        self.labels = sorted({name for names, _ in self._split_names(train) for name in names}, key=_natural)
        if len(self.labels) < 2:
            raise DataError(f"the training data has only one label ({', '.join(self.labels)}); a classifier needs two "
                            "or more", train.source)

    def check(self, split: Split) -> None:
        for value, line in split.values("label"):
            self._ids(value, line, split.source)

    # --- features ----------------------------------------------------------------------------------------------

    def encode_batch(self, rows: dict[str, list[Any]], tokenizer: Any, max_length: int,
                     labelled: bool = True) -> dict[str, list[Any]]:
        features = encode_texts(rows, tokenizer, max_length)
        if labelled:
            features["labels"] = [self._ids(value, line) for value, line in zip(rows["label"], rows[LINE])]
        return features

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

    def predictions(self, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
        by_row: list[Any] = [None] * len(split)
        for feature, probs in zip(features, outputs):
            by_row[feature["row"]] = probs
        result = []
        for probs in by_row:
            scores = dict(zip(self.labels, probs))
            if self.options.multi_label:
                label: Any = [name for name, p in scores.items() if p >= self.options.threshold]
            else:
                label = self.labels[max(range(len(probs)), key=probs.__getitem__)]
            result.append({"label": label, "scores": scores})
        return result

    baseline_name = "the training data's most frequent label"
    published_scores = published.CLASSIFICATION

    def baseline(self, train: Split, split: Split) -> list[Any]:
        """Every row: the training data's most frequent label (multi-label: each label most training rows have),
        scored by its share of the training rows."""
        counts = dict.fromkeys(self.labels, 0)
        rows = 0
        for names, _ in self._split_names(train):
            rows += 1
            for name in names:
                counts[name] += 1
        scores = {name: count / max(rows, 1) for name, count in counts.items()}
        if self.options.multi_label:
            label: Any = [name for name, share in scores.items() if share > 0.5]
        else:
            label = max(self.labels, key=lambda name: (counts[name], -self.labels.index(name)))
        return [{"label": label, "scores": dict(scores)} for _ in range(len(split))]

    def references(self, split: Split) -> list[Any]:
        if self.options.multi_label:
            return [names for names, _ in self._split_names(split)]
        return [names[0] for names, _ in self._split_names(split)]

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        texts: dict[str, Any] = {k: row[k] for k in ("text", "text_pair") if k in row}
        scores = {k: round(v, 6) for k, v in prediction["scores"].items()}
        return {**texts, "label": prediction["label"], "scores": scores}

    def report(self, report: Any, split: str, predictions: list[Any], references: list[Any]) -> None:
        from engine_builtins.classification.report import classification_report

        classification_report(report, split, predictions, references, self.labels)

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
