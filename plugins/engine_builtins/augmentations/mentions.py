"""Tagging: mention replacement (Dai & Adel 2020, "An Analysis of Simple Data Augmentation for Named Entity
Recognition"), tags kept aligned.

For rows of the "tokens" shape (``text`` a list of words, ``label`` one tag per word, as the tagging task reads them),
each entity mention is, with probability ``p``, replaced by another mention of the same type drawn from the training
rows; the new mention's tags are written again for its length in the scheme the rows use (BIO: ``B-LOC I-LOC``;
IOB1: the first tag keeps the replaced mention's prefix; BIOES: ``S-LOC``, ``B-LOC I-LOC E-LOC``; BILOU: ``U-LOC``,
``B-LOC I-LOC L-LOC``). Words outside the replaced mentions and their tags stay as they were, in order, so the row's
tags stay one per word and the spans of every other mention are unchanged.

Where the mentions come from (the inventory): the core hands an augmentation the training split a chunk at a time
(1,000 rows, ``engine.data.features.AUGMENT_CHUNK``), and a factory sees its options only, never the split. The
inventory is therefore the mentions of the chunk being augmented: for a training split of up to 1,000 rows, the
low-resource setting the paper studies (50 to 500 sentences) and where augmentation helps, that is the whole split;
for a larger split, each row draws from the 1,000 rows around it. Keeping it per chunk is what keeps the result
sound: a chunk's rows depend only on that chunk and its seeded generator, as the core's cache and reproducibility
promise (whichever process or pass reads the split), where an inventory gathered across calls would make a chunk's
rows depend on which chunks ran before it in this process. Within the chunk only the rows no earlier augmentation
produced (those without ``_augmented``) feed the inventory, so a mention rewritten by an earlier step is never
spread; a chunk holding only such rows uses all of them. A mention is drawn uniformly from the distinct mentions of
its type, the replaced one excluded when its type has others (a type with one mention leaves it as it is).

A row in which no mention was replaced (it has none, or no draw fell below ``p``) passes through as itself: with
``keep_original`` it is not added a second time, so the core counts only rows that really changed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine import LINE, DataError, Register
from engine_builtins.tagging.schemes import Entity, detect_scheme, entities, split_tag

Rows = list[dict[str, Any]]
Mention = tuple[str, ...]
AUGMENTED = "_augmented"  # set by the core on rows an earlier augmentation produced


class MentionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.5, gt=0, le=1, description="Probability that each entity mention of an augmented row is "
                     "replaced by another mention of its type.")
    prob: float = Field(1.0, gt=0, le=1, description="Share of the rows augmented.")
    keep_original: bool = Field(False, description="Add augmented copies instead of replacing rows.")


def _words(value: Any) -> list[str]:
    return value.split() if isinstance(value, str) else [str(w) for w in value]


def _tags(row: dict[str, Any]) -> list[str] | None:
    """The row's tags as a list, or None for a row without tags (or without words)."""
    label, text = row.get("label"), row.get("text")
    if label is None or text is None:
        return None
    tags = _words(label)
    for tag in tags:
        try:
            split_tag(tag)
        except ValueError as exc:
            raise DataError(f"mention_replacement reads entity tags (B-PER, I-PER, O...): {exc}",
                            line=row.get(LINE)) from None
    if len(tags) != len(_words(text)):
        raise DataError(f"{len(tags)} tags for {len(_words(text))} words", line=row.get(LINE))
    return tags


def inventory(rows: Rows) -> dict[str, list[Mention]]:
    """The distinct mentions of each entity type in ``rows``, in the order first seen (the draw is then
    reproducible): from the rows no earlier augmentation produced, or from all rows when every one was."""
    originals = [row for row in rows if AUGMENTED not in row] or rows
    found: dict[str, dict[Mention, None]] = {}
    for row in originals:
        tags = _tags(row)
        if tags is None:
            continue
        words = _words(row["text"])
        for e in entities(tags):
            found.setdefault(e.type, {})[tuple(words[e.start:e.end])] = None
    return {kind: list(mentions) for kind, mentions in found.items()}


def scheme_of(rows: Rows) -> str:
    """The tag scheme of a chunk's rows (``schemes.detect_scheme``): "bio", "iob1", "bioes" or "bilou"."""
    try:
        return detect_scheme(t for t in (_tags(row) for row in rows) if t is not None)
    except ValueError as exc:
        raise DataError(f"mention_replacement: {exc}") from None


def mention_tags(kind: str, length: int, scheme: str, first: str) -> list[str]:
    """The tags of a mention of ``length`` words and type ``kind`` in ``scheme``; ``first`` is the prefix the
    replaced mention began with (IOB1 begins a mention with B only right after another of its type)."""
    if scheme in ("bioes", "bilou"):
        single, last = ("S", "E") if scheme == "bioes" else ("U", "L")
        prefixes = [single] if length == 1 else ["B", *["I"] * (length - 2), last]
    elif scheme == "iob1":
        prefixes = ["B" if first == "B" else "I", *["I"] * (length - 1)]
    else:
        prefixes = ["B", *["I"] * (length - 1)]
    return [f"{prefix}-{kind}" for prefix in prefixes]


def replace_mentions(words: Sequence[str], tags: Sequence[str], mentions: dict[str, list[Mention]], scheme: str,
                     p: float, rng: random.Random) -> tuple[list[str], list[str]] | None:
    """``words`` and ``tags`` with each mention replaced with probability ``p`` by another of its type from
    ``mentions``; None when none was replaced."""
    new_words: list[str] = []
    new_tags: list[str] = []
    at, changed = 0, False
    for e in entities(tags):
        new_words.extend(words[at:e.start])
        new_tags.extend(tags[at:e.start])
        at = e.end
        replacement = _draw(e, tuple(words[e.start:e.end]), mentions, p, rng)
        if replacement is None:
            new_words.extend(words[e.start:e.end])
            new_tags.extend(tags[e.start:e.end])
            continue
        changed = True
        new_words.extend(replacement)
        new_tags.extend(mention_tags(e.type, len(replacement), scheme, split_tag(tags[e.start])[0]))
    if not changed:
        return None
    new_words.extend(words[at:])
    new_tags.extend(tags[at:])
    return new_words, new_tags


def _draw(entity: Entity, current: Mention, mentions: dict[str, list[Mention]], p: float,
          rng: random.Random) -> Mention | None:
    """Another mention of the entity's type, or None (the draw above ``p``, or no other mention to take)."""
    if rng.random() >= p:
        return None
    others = [m for m in mentions.get(entity.type, []) if m != current]
    return rng.choice(others) if others else None


def mention_replacement(options: MentionOptions) -> Callable[[Rows, random.Random], Rows]:
    """Replace entity mentions by other mentions of the same type from the training rows (Dai & Adel 2020)."""

    def apply(rows: Rows, rng: random.Random) -> Rows:
        mentions = inventory(rows)
        scheme = scheme_of(rows) if mentions else "bio"
        result = list(rows) if options.keep_original else []
        for row in rows:
            new = None
            if rng.random() < options.prob:
                tags = _tags(row)
                if tags is not None and mentions:
                    new = _replaced(row, tags, mentions, scheme, options.p, rng)
            if new is not None:
                result.append(new)
            elif not options.keep_original:
                result.append(row)
        return result

    return apply


def _replaced(row: dict[str, Any], tags: list[str], mentions: dict[str, list[Mention]], scheme: str, p: float,
              rng: random.Random) -> dict[str, Any] | None:
    changed = replace_mentions(_words(row["text"]), tags, mentions, scheme, p, rng)
    if changed is None:
        return None
    words, new_tags = changed
    new = dict(row)
    # As the row came: a list of words (or a whitespace-separated string), a list of tags (or a string of them).
    new["text"] = " ".join(words) if isinstance(row["text"], str) else words
    new["label"] = " ".join(new_tags) if isinstance(row["label"], str) else new_tags
    return new


def declare(register: Register) -> None:
    register("mention_replacement", mention_replacement, options=MentionOptions, shapes=["tokens"],
             description="Replace entity mentions by other mentions of their type from the training rows "
                         "(Dai & Adel 2020); tags kept aligned.")

