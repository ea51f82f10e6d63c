"""The tagging task: one tag per word, entities from the tags.

Rows carry ``text`` (a list of tokens, or a string split on whitespace) and, when labelled, ``label`` (a list of
tags, or a string of them). Tags in any scheme (BIO, IOB1, BIOES, BILOU) are read as entity spans and used as BIO
inside (see ``schemes``); the saved model knows the BIO tags of the entity types in the training data.

(Not named task.py: a submodule named like a hook would replace the hook function on the package once imported.)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from engine import LINE, DataError, Split, console
from engine.head import HeadOutput, HeadSpec
from engine.task import Task
from engine_builtins import published
from engine_builtins.sentence_inputs import pad_batch
from engine_builtins.tagging.alignment import merge_windows, tokenize_sentences, window_features
from engine_builtins.tagging.options import TaggingOptions
from engine_builtins.tagging.schemes import (
    OUTSIDE,
    TagError,
    check_scheme,
    detect_scheme,
    entities,
    normalize,
    split_tag,
    starts_with_inside,
)

if TYPE_CHECKING:
    import torch

# torch is imported inside methods: building a task (as `engine validate` does) must stay fast.

_WORD = re.compile(r"\S+")
DEFAULT_METRICS = ["entity_f1", "entity_precision", "entity_recall", "entity_f1_macro", "token_accuracy",
                   "entity_per_type"]


class TaggingTask(Task):
    labels_per_word = True

    def __init__(self, options: TaggingOptions) -> None:
        self.options = options
        self.scheme: str = options.scheme
        self.entity_types: list[str] = list(options.types or [])
        self.tag_names: list[str] = _bio_tags(self.entity_types) if self.entity_types else []
        self.monitor = "validation.entity_f1"
        self.monitor_mode = "max"
        self.defaults: dict[str, Any] = {
            "head": "crf",
            # The names HF datasets and JSONL files use; a CoNLL file's columns are set by position instead.
            "data": {"text": "tokens", "label": "tags"},
            "metrics": list(DEFAULT_METRICS),
            # Tagging sets are small (a few thousand sentences): more, smaller steps learn far more per epoch.
            "training": {"batch_size": 16},
            # The emission layer and the CRF's transitions start from nothing, the encoder from pretraining.
            "optimizer": {"name": "adamw", "lr": 1e-4, "head_lr": 1e-3},
        }

    # --- rows --------------------------------------------------------------------------------------------------

    @staticmethod
    def tokens(row: dict[str, Any]) -> list[str]:
        text = row.get("text")
        if isinstance(text, str):
            return _WORD.findall(text)
        if isinstance(text, (list, tuple)):
            return [str(t) for t in text]
        return []

    def _raw_tags(self, text: Any, value: Any, line: int | None, source: str | None = None) -> list[str]:
        tokens = self.tokens({"text": text})
        if not tokens:
            raise DataError("no tokens in this sentence", source, line)
        if value is None:
            raise DataError("missing tags", source, line)
        tags = value.split() if isinstance(value, str) else value
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise DataError(f"expected a list of tag names such as ['B-PER', 'O'], got {value!r}", source, line)
        if len(tags) != len(tokens):
            raise DataError(f"{len(tags)} tags for {len(tokens)} tokens", source, line)
        return [t.strip() for t in tags]

    def _tag_error(self, text: Any, line: int | None, source: str, error: TagError) -> DataError:
        tokens = self.tokens({"text": text})
        return DataError(f"token {error.index + 1} ({tokens[error.index]!r}): {error}", source, line)

    def _checked(self, split: Split) -> tuple[list[tuple[Any, int | None]], list[list[str]], str]:
        """Every row's tags, checked against the scheme (declared, or detected in this split) and the known types."""
        rows, sequences = [], []
        for text, value, line in split.values("text", "label"):
            rows.append((text, line))
            sequences.append(self._raw_tags(text, value, line, split.source))
        for (text, line), tags in zip(rows, sequences):
            for k, tag in enumerate(tags):
                try:
                    split_tag(tag)
                except ValueError as exc:
                    raise self._tag_error(text, line, split.source, TagError(str(exc), k)) from None
        if self.options.scheme == "auto":
            self._check_one_family(split, rows, sequences)
            scheme = detect_scheme(sequences)
        else:
            scheme = self.options.scheme
        for (text, line), tags in zip(rows, sequences):
            try:
                check_scheme(tags, scheme)
            except TagError as exc:
                hint = "" if self.options.scheme == "auto" else " (task.scheme is set; use \"auto\" to detect it)"
                raise self._tag_error(text, line, split.source,
                                      TagError(f"inconsistent tag scheme: {exc}{hint}", exc.index)) from None
        if scheme == "bio" and self.options.scheme == "bio":
            odd = sum(starts_with_inside(tags) for tags in sequences)
            if odd:
                console.warn(f"{split.source}: {odd} sentence(s) have an entity that begins with I- in BIO data; "
                             "read as an entity start, as conlleval does")
        return rows, sequences, scheme

    def _check_one_family(self, split: Split, rows: list[tuple[Any, int | None]], sequences: list[list[str]]) -> None:
        """BIOES (E-, S-) and BILOU (L-, U-) prefixes in one file: point at the first tag that mixes them."""
        first: tuple[str, int | None] | None = None  # a tag of the family seen first, and its line
        for (text, line), tags in zip(rows, sequences):
            for k, tag in enumerate(tags):
                families = {"E": "BIOES", "S": "BIOES", "L": "BILOU", "U": "BILOU"}
                family = families.get(tag[:1]) if tag != OUTSIDE else None
                if family is None:
                    continue
                if first is None:
                    first = (tag, line)
                elif family not in ("BIOES" if first[0][0] in "ES" else "BILOU"):
                    raise self._tag_error(text, line, split.source, TagError(
                        f"inconsistent tag scheme: {tag!r} is a {family} tag, but {first[0]!r} "
                        f"(line {first[1]}) is not; use one scheme throughout", k))

    def _check_types(self, split: Split, rows: list[tuple[Any, int | None]], sequences: list[list[str]]) -> None:
        known = set(self.entity_types)
        for (text, line), tags in zip(rows, sequences):
            for k, tag in enumerate(tags):
                kind = split_tag(tag)[1]
                if tag != OUTSIDE and kind not in known:
                    raise self._tag_error(text, line, split.source, TagError(
                        f"unknown tag {tag!r}: entity type {kind!r} is not among the model's types "
                        f"({', '.join(self.entity_types)})", k))

    def fit(self, train: Split) -> None:
        rows, sequences, self.scheme = self._checked(train)
        if not self.entity_types:
            self.entity_types = sorted({split_tag(t)[1] for tags in sequences for t in tags if t != OUTSIDE})
            if not self.entity_types:
                raise DataError("the training data has no entities (every tag is 'O')", train.source)
            self.tag_names = _bio_tags(self.entity_types)
        self._check_types(train, rows, sequences)
        how = "declared" if self.options.scheme != "auto" else "detected"
        used = "" if self.scheme == "bio" else ", used as BIO"
        console.info(f"tags: {self.scheme.upper()} ({how}{used}); {len(self.entity_types)} entity types: "
                     f"{', '.join(self.entity_types)}")

    def check(self, split: Split) -> None:
        rows, sequences, _ = self._checked(split)
        self._check_types(split, rows, sequences)

    def references(self, split: Split) -> list[Any]:
        return [normalize(self._raw_tags(text, value, line, split.source))
                for text, value, line in split.values("text", "label")]

    # --- features ----------------------------------------------------------------------------------------------

    def encode_batch(self, rows: dict[str, list[Any]], tokenizer: Any, max_length: int,
                     labelled: bool = True) -> dict[str, list[Any]]:
        index = {name: i for i, name in enumerate(self.tag_names)}
        # In "all" mode a word's later subwords continue its entity: B-X -> I-X.
        continuation = [index[f"I-{name[2:]}"] if name.startswith("B-") else i for i, name in enumerate(self.tag_names)]
        lines = rows[LINE]
        sentences = [self.tokens({"text": text}) for text in rows["text"]]
        for words, line in zip(sentences, lines):
            if not words:
                raise DataError("no tokens in this text", line=line)
        features: dict[str, list[Any]] = {}
        for j, tok in enumerate(tokenize_sentences(tokenizer, sentences)):
            tags = None
            if labelled:
                names = normalize(self._raw_tags(rows["text"][j], rows["label"][j], lines[j]))
                unknown = [t for t in names if t not in index]
                if unknown:
                    raise DataError(f"unknown tag {unknown[0]!r}; the model's tags are: {', '.join(self.tag_names)}",
                                    line=lines[j])
                tags = [index[t] for t in names]
            for part in window_features(tok, tags, max_length, self.options.stride, self.options.label_subwords,
                                        continuation):
                part["row"] = j
                for key, value in part.items():
                    features.setdefault(key, []).append(value)
        return features

    def collate(self, features: list[dict[str, Any]], tokenizer: Any) -> dict[str, torch.Tensor]:
        import torch

        batch = pad_batch(features, tokenizer)
        shape = batch["input_ids"].shape
        tag_mask = torch.zeros(shape, dtype=torch.bool)
        word_mask = torch.zeros(shape, dtype=torch.bool)
        labelled = "labels" in features[0]
        labels = torch.full(shape, -100, dtype=torch.long) if labelled else None
        for b, feature in enumerate(features):
            tag_mask[b, feature["tag_positions"]] = True
            word_mask[b, feature["word_positions"]] = True
            if labels is not None:
                labels[b, feature["tag_positions"]] = torch.tensor(feature["labels"], dtype=torch.long)
        batch["tag_mask"] = tag_mask
        batch["word_mask"] = word_mask
        if labels is not None:
            batch["labels"] = labels
        return batch

    def head_spec(self, hidden_size: int) -> HeadSpec:
        from engine_builtins.tagging.heads import token_cross_entropy

        return HeadSpec(hidden_size, len(self.tag_names), "token", loss=token_cross_entropy,
                        labels=list(self.tag_names))

    # --- outputs -----------------------------------------------------------------------------------------------

    def outputs(self, batch: dict[str, torch.Tensor], output: HeadOutput) -> list[Any]:
        # A decoding head (the CRF) gives its tags; any other head's best tag per position is its argmax.
        predicted = output.predictions if output.predictions is not None else output.logits.argmax(dim=-1)
        mask = batch["word_mask"]
        flat = predicted[mask].cpu().tolist()
        values, start = [], 0
        for n in mask.sum(dim=1).tolist():
            values.append(flat[start : start + n])
            start += n
        return values

    baseline_name = "no entity (every word O)"
    published_scores = published.TAGGING

    def baseline(self, train: Split, split: Split) -> list[Any]:
        """Every word of every row: O."""
        return [{"tags": ["O"] * len(self.tokens({"text": text}))} for text, _ in split.values("text")]

    def predictions(self, split: Split, features: Any, outputs: list[Any]) -> list[Any]:
        parts: list[list[Any]] = [[] for _ in range(len(split))]
        for feature, values in zip(features, outputs):
            parts[feature["row"]].append((feature["words"], feature["context"], values))
        result = []
        for (text, _), row_parts in zip(split.values("text"), parts):
            ids = merge_windows(len(self.tokens({"text": text})), row_parts)
            # Windows (or a softmax head) may join into an I- after O; read as an entity start, written as B-.
            result.append({"tags": normalize([self.tag_names[t] for t in ids])})
        return result

    def format_prediction(self, row: dict[str, Any], prediction: Any) -> dict[str, Any]:
        text = row.get("text")
        if isinstance(text, str):
            matches = list(_WORD.finditer(text))
            tokens = [m.group() for m in matches]
            spans = [m.span() for m in matches]
        else:
            tokens = self.tokens(row)
            text, spans, position = " ".join(tokens), [], 0
            for token in tokens:
                spans.append((position, position + len(token)))
                position += len(token) + 1
        found = []
        for e in entities(prediction["tags"]):
            start_char, end_char = spans[e.start][0], spans[e.end - 1][1]
            found.append({"type": e.type, "start": e.start, "end": e.end, "text": text[start_char:end_char],
                          "start_char": start_char, "end_char": end_char})
        out: dict[str, Any] = {"text": text, "tokens": tokens, "tags": prediction["tags"], "entities": found}
        return out

    def report(self, report: Any, split: str, predictions: list[Any], references: list[Any]) -> None:
        from engine_builtins.tagging.report import tagging_report

        tagging_report(report, split, predictions, references)

    # --- saving ------------------------------------------------------------------------------------------------

    def hf_config(self) -> dict[str, Any]:
        return {"id2label": dict(enumerate(self.tag_names)), "label2id": {t: i for i, t in enumerate(self.tag_names)}}

    def state_dict(self) -> dict[str, Any]:
        return {"entity_types": self.entity_types, "tags": self.tag_names, "scheme": self.scheme}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entity_types = list(state["entity_types"])
        self.tag_names = list(state["tags"])
        self.scheme = state.get("scheme", self.scheme)


def _bio_tags(types: list[str]) -> list[str]:
    return [OUTSIDE, *(f"{prefix}-{t}" for t in types for prefix in "BI")]

