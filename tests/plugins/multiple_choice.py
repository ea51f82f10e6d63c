"""A multiple-choice task, as a third party writes one: a row is a question and its choices (several sequences),
``labels`` has a row's first dimension while ``input_ids`` has a sequence's, and a head of its own scores choices."""

import torch

from engine import HeadOutput, HeadSpec, Task, hookimpl


class MultipleChoice(Task):
    monitor, monitor_mode = "validation.accuracy", "max"
    defaults = {"head": "choice_scorer", "metrics": ["accuracy"]}  # noqa: RUF012 - read, never mutated

    def __init__(self, options: None) -> None:
        self.choices = 0

    def fit(self, train):  # the data file names the choices as the second text: "data": {"text": ["text", "choices"]}
        self.choices = len(next(train.values("text_pair"))[0])

    def encode_batch(self, rows, tokenizer, max_length, labelled=True):
        pairs = [tokenizer([q] * len(c), c, truncation=True, max_length=max_length)["input_ids"]
                 for q, c in zip(rows["text"], rows["text_pair"])]
        features = {"input_ids": pairs, "length": [max(len(ids) for ids in p) for p in pairs]}
        if labelled:
            features["labels"] = [int(label) for label in rows["label"]]
        return features

    def collate(self, features, tokenizer):  # (rows x choices, tokens) sequences; labels (rows,)
        batch = tokenizer.pad([{"input_ids": ids} for f in features for ids in f["input_ids"]], return_tensors="pt")
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return dict(batch)

    def head_spec(self, hidden_size):
        return HeadSpec(hidden_size, 1, "sequence", extra={"choices": self.choices})

    def outputs(self, batch, output):
        return output.logits.argmax(-1).tolist()

    def predictions(self, split, features, outputs):
        return [{"label": str(o)} for _, o in sorted(zip(features["row"], outputs))]

    def references(self, split):
        return [str(label) for label, _ in split.values("label")]

    def report(self, report, split, predictions, references):  # a section of its own in RUN_DIR/report/index.html
        picked = [sum(p["label"] == str(i) for p in predictions) for i in range(self.choices)]
        report.section(f"Answer positions: {split}").table(["choice", "predicted"], list(enumerate(picked)))

    def state_dict(self):
        return {"choices": self.choices}

    def load_state_dict(self, state):
        self.choices = state["choices"]


class ChoiceScorer(torch.nn.Module):
    def __init__(self, options, spec):
        super().__init__()
        self.choices, self.score = spec.extra["choices"], torch.nn.Linear(spec.hidden_size, 1)

    def forward(self, output, batch):
        logits = self.score(output.last_hidden_state[:, 0]).view(-1, self.choices)  # (rows, choices)
        labels = batch.get("labels")
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return HeadOutput(logits=logits, loss=loss)


@hookimpl
def task(register):
    register("multiple_choice", MultipleChoice)


@hookimpl
def build_head(register):
    register("choice_scorer", ChoiceScorer)
