"""A whole third-party task in under 60 lines, against engine.Task: two labels, learned with a focal loss."""

import torch

from engine import DataError, Task, hookimpl
from engine.head import HeadSpec


class FocalTask(Task):
    monitor, monitor_mode = "validation.accuracy", "max"
    defaults = {"head": "linear", "metrics": ["accuracy"]}  # noqa: RUF012 - read, never mutated

    def __init__(self, options: None) -> None:  # registered without options: "task": "focal"
        self.gamma, self.labels = 2.0, []

    def fit(self, train):
        self.labels = sorted({str(value) for value, _ in train.values("label")})
        if len(self.labels) != 2:
            raise DataError(f"expected two labels, got {self.labels}", train.source)

    def encode_batch(self, rows, tokenizer, max_length, labelled=True):
        features = dict(tokenizer(rows["text"], truncation=True, max_length=max_length))
        if labelled:
            features["labels"] = [self.labels.index(str(value)) for value in rows["label"]]
        return features

    def collate(self, features, tokenizer):
        batch = tokenizer.pad([{k: f[k] for k in tokenizer.model_input_names} for f in features], return_tensors="pt")
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return dict(batch)

    def focal_loss(self, logits, labels):  # Lin et al. 2017: cross-entropy weighted towards hard examples
        p = torch.softmax(logits.float(), -1).gather(1, labels[:, None]).squeeze(1)
        return (-((1 - p) ** self.gamma) * torch.log(p.clamp(min=1e-8))).mean()

    def head_spec(self, hidden_size):
        return HeadSpec(hidden_size, 2, "sequence", loss=self.focal_loss, labels=self.labels)

    def outputs(self, batch, output):  # one value per feature (here, per row), in batch order
        return output.logits.argmax(-1).tolist()

    def predictions(self, split, features, outputs):  # one per row of the split, in its order
        return [{"label": self.labels[o]} for _, o in sorted(zip(features["row"], outputs))]

    def references(self, split):
        return [str(value) for value, _ in split.values("label")]

    def state_dict(self):
        return {"labels": self.labels}

    def load_state_dict(self, state):
        self.labels = state["labels"]


@hookimpl
def task(register):
    register("focal", FocalTask)
