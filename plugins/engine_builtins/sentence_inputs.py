"""Encoding for sequence-level tasks (classification, regression): one text or a pair of texts per row."""

from __future__ import annotations

from typing import Any

from engine import LINE, DataError


def encode_texts(rows: dict[str, list[Any]], tokenizer: Any, max_length: int) -> dict[str, list[Any]]:
    """Tokenize a batch of rows' ``text`` (and ``text_pair``), truncating to ``max_length``."""
    pairs = rows.get("text_pair")
    if pairs is not None and None in pairs:
        missing = pairs.index(None)
        raise DataError("missing the second text of the pair", line=rows[LINE][missing])
    for key in ("text", "text_pair"):
        for value, line in zip(rows.get(key) or (), rows[LINE]):
            if isinstance(value, (dict, list)):
                what = "an object" if isinstance(value, dict) else "a list"
                which = "the second text of the pair" if key == "text_pair" else "the text"
                raise DataError(f"{which} (data.text) is {what}, {_short(value)}; expected a string: name text "
                                "columns only in data.text", line=line)
    encoded = tokenizer([str(t) for t in rows["text"]], [str(t) for t in pairs] if pairs is not None else None,
                        truncation=True, max_length=max_length)
    return dict(encoded)


def _short(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def pad_batch(features: list[dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    """Pad the model inputs of ``features`` to the longest in the batch."""
    import torch

    width = max(f["length"] for f in features)
    batch: dict[str, Any] = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in features[0]:
            continue
        pad = tokenizer.pad_token_id if key == "input_ids" else 0
        batch[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features], dtype=torch.long)
    return batch
