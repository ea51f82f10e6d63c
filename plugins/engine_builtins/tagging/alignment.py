"""Words to subword tokens and back: which subword carries each word's tag, and windows over long sentences.

Words are joined with single spaces and tokenized as one text with character offsets, and each subword goes to the
word its offsets fall in. That needs no ``is_split_into_words`` support (which RoBERTa-style tokenizers only give
with ``add_prefix_space``) and keeps a token with a space inside (``ke s``) one word. A word that yields no subword at
all (an empty token, a lone U+FEFF) is replaced by the tokenizer's unknown token, so every word is seen and tagged.

A sentence longer than the model's limit becomes overlapping windows that start and end at word boundaries; each
word's prediction comes from the window where it has the most context on both sides. Nothing is cut.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine import EngineError

SubwordMode = Literal["first", "last", "all"]
CHUNK = 512
UNCUT = 1 << 30  # the context of a word at a sentence edge that no window boundary cuts


@dataclass
class Tokenized:
    """One sentence as subwords: the special tokens around it and, per word, its subword range in ``content``."""

    prefix: dict[str, list[int]]
    content: dict[str, list[int]]
    suffix: dict[str, list[int]]
    first: list[int]  # first subword of each word, as an index into content
    last: list[int]  # last subword of each word, inclusive


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text the tokenizer sees (words joined by single spaces) and each word's ``(start, end)`` in it."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def tokenize_sentences(tokenizer: Any, sentences: list[list[str]]) -> list[Tokenized]:
    """Tokenize word lists in batches; see the module docstring for how subwords find their words."""
    result: list[Tokenized] = []
    for start in range(0, len(sentences), CHUNK):
        part = sentences[start : start + CHUNK]
        encoded = _encode(tokenizer, [join_words(words)[0] for words in part])
        for j, words in enumerate(part):
            tokenized = _align(encoded, j, words)
            if tokenized is None:
                # Some words have no subword: stand the unknown token in for them and tokenize this sentence again.
                unk = tokenizer.unk_token
                if unk is None:
                    raise EngineError(
                        "the tokenizer gives no subword for some words and has no unknown token to stand in")
                counts = _word_counts(encoded, j, words)
                patched = [w if n else unk for w, n in zip(words, counts)]
                tokenized = _align(_encode(tokenizer, [join_words(patched)[0]]), 0, patched)
                if tokenized is None:
                    raise EngineError(f"the tokenizer gives no subword for a word even as {unk!r}: {words!r}")
            result.append(tokenized)
    return result


def _encode(tokenizer: Any, texts: list[str]) -> Any:
    return tokenizer(texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True,
                     return_special_tokens_mask=True)


def _word_of(offsets: list[tuple[int, int]], special: list[int], spans: list[tuple[int, int]]) -> list[int | None]:
    starts = [s for s, _ in spans]
    owners: list[int | None] = []
    for (begin, _), is_special in zip(offsets, special):
        if is_special:
            owners.append(None)
            continue
        w = max(bisect_right(starts, begin) - 1, 0)
        # A subword in the gap after a word (a SentencePiece '▁' before punctuation) belongs to the next word.
        if begin >= spans[w][1] and w + 1 < len(spans):
            w += 1
        owners.append(w)
    return owners


def _word_counts(encoded: Any, j: int, words: Sequence[str]) -> list[int]:
    owners = _word_of(encoded["offset_mapping"][j], encoded["special_tokens_mask"][j], join_words(words)[1])
    counts = [0] * len(words)
    for w in owners:
        if w is not None:
            counts[w] += 1
    return counts


def _align(encoded: Any, j: int, words: Sequence[str]) -> Tokenized | None:
    special = encoded["special_tokens_mask"][j]
    owners = _word_of(encoded["offset_mapping"][j], special, join_words(words)[1])
    inner = [i for i, s in enumerate(special) if not s]
    if not inner:
        return None
    lo, hi = inner[0], inner[-1] + 1
    if hi - lo != len(inner):
        raise EngineError("the tokenizer puts special tokens inside a sentence; tagging cannot align its words")
    first = [-1] * len(words)
    last = [-1] * len(words)
    for i in range(lo, hi):
        w = owners[i]
        assert w is not None
        if first[w] < 0:
            first[w] = i - lo
        last[w] = i - lo
    if min(first) < 0:
        return None
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
    ids = {k: encoded[k][j] for k in keys}
    return Tokenized({k: v[:lo] for k, v in ids.items()}, {k: v[lo:hi] for k, v in ids.items()},
                     {k: v[hi:] for k, v in ids.items()}, first, last)


def plan_windows(first: list[int], total: int, room: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` of windows of at most ``room`` subwords, consecutive windows sharing up to
    ``stride`` subwords. A single word longer than ``room`` gets a window of its own (its tail is dropped, its first
    subword kept)."""
    n = len(first)
    bounds = [*first, total]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + 1
        while end < n and bounds[end + 1] - bounds[start] <= room:
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        # The next window starts at the earliest word that keeps the overlap within `stride` subwords.
        nxt = end
        while nxt - 1 > start and bounds[end] - bounds[nxt - 1] <= stride:
            nxt -= 1
        start = nxt


def window_features(tok: Tokenized, tags: list[int] | None, max_length: int, stride: int, mode: SubwordMode,
                    continuation: list[int] | None) -> list[dict[str, Any]]:
    """Model features for one sentence: one per window, each with the positions that carry tags.

    ``continuation[t]`` is the tag a non-first subword of a word tagged ``t`` gets in ``"all"`` mode (B-X -> I-X).
    """
    length = len(tok.content["input_ids"])
    specials = len(tok.prefix["input_ids"]) + len(tok.suffix["input_ids"])
    room = max_length - specials
    if room < 1:
        raise EngineError(f"model.max_length={max_length} leaves no room for words after {specials} special tokens")
    stride = min(stride, room // 2)
    windows = [(0, len(tok.first))] if length <= room else plan_windows(tok.first, length, room, stride)
    features = []
    for ws, we in windows:
        lo = tok.first[ws]
        hi = min(tok.first[we] if we < len(tok.first) else length, lo + room)
        shift = len(tok.prefix["input_ids"]) - lo
        feature: dict[str, Any] = {k: tok.prefix[k] + tok.content[k][lo:hi] + tok.suffix[k] for k in tok.content}
        read: list[int] = []
        tagged: list[int] = []
        labels: list[int] = []
        context: list[int] = []
        for w in range(ws, we):
            first, last = tok.first[w], min(tok.last[w], hi - 1)
            positions = {"first": [first], "last": [last], "all": list(range(first, last + 1))}[mode]
            read.append((last if mode == "last" else first) + shift)
            tagged.extend(p + shift for p in positions)
            if tags is not None:
                tag = tags[w]
                labels.extend([tag] + [continuation[tag] if continuation else tag] * (len(positions) - 1))
            left = first - lo if lo > 0 else UNCUT
            right = hi - 1 - last if hi < length else UNCUT
            context.append(min(left, right))
        feature.update(length=len(feature["input_ids"]), words=(ws, we), word_positions=read, tag_positions=tagged,
                       context=context)
        if tags is not None:
            feature["labels"] = labels
        features.append(feature)
    return features


def merge_windows(n_words: int, parts: list[tuple[tuple[int, int], list[int], list[Any]]]) -> list[Any]:
    """Per-word values of a sentence from its windows' ``((start, end), context, values)``: for each word, the value
    from the window where it has the most context."""
    best: list[tuple[int, Any]] = [(-1, None)] * n_words
    for (ws, _), context, values in parts:
        for k, (c, value) in enumerate(zip(context, values)):
            if c > best[ws + k][0]:
                best[ws + k] = (c, value)
    return [value for _, value in best]
