"""Encoding for sequence-level tasks (classification, regression): one text or a pair of texts per row."""

from __future__ import annotations

from typing import Any, Callable

from engine import DataError, Split
from engine import console

CHUNK = 1024


def encode_texts(split: Split, tokenizer: Any, max_length: int, label: Callable[[int, dict[str, Any]], Any] | None) -> list[dict[str, Any]]:
    """Tokenize every row (truncating to ``max_length``), with ``label(i, row)`` as ``labels`` when given."""
    rows = split.rows
    pair = any("text_pair" in row for row in rows)
    if pair and not all("text_pair" in row for row in rows):
        missing = next(i for i, row in enumerate(rows) if "text_pair" not in row)
        raise DataError("missing the second text of the pair", *split.where(missing))
    features: list[dict[str, Any]] = []
    truncated = 0
    chunks = range(0, len(rows), CHUNK)
    for start in console.track(chunks, total=len(chunks), description=f"tokenize {split.name}", unit="chunks"):
        part = rows[start : start + CHUNK]
        encoded = tokenizer(
            [str(r["text"]) for r in part], [str(r["text_pair"]) for r in part] if pair else None,
            truncation=True, max_length=max_length,
        )
        for j in range(len(part)):
            feature = {key: encoded[key][j] for key in encoded.keys()}
            feature["length"] = len(feature["input_ids"])
            feature["row"] = start + j
            if feature["length"] >= max_length:
                truncated += 1
            if label is not None:
                feature["labels"] = label(start + j, part[j])
            features.append(feature)
    if truncated:
        console.warn(f"{split.name}: {truncated} of {len(rows)} rows reached model.max_length={max_length} tokens and were truncated")
    return features


def pad_batch(features: list[dict[str, Any]], tokenizer: Any) -> dict[str, Any]:
    """Pad the model inputs of ``features`` to the longest in the batch."""
    import torch

    width = max(f["length"] for f in features)
    batch = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in features[0]:
            continue
        pad = tokenizer.pad_token_id if key == "input_ids" else 0
        batch[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in features], dtype=torch.long)
    return batch
