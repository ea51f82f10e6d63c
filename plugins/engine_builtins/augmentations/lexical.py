"""Word-level augmentations of training texts (EDA, Wei & Zou 2019): random swap and random deletion.

They act on the ``text`` and ``text_pair`` strings of training rows only; rows whose text is a token list are left as
they are, and a task with one tag per word (``Task.labels_per_word``: tagging) refuses them at validation, since
moving words would separate them from their tags.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine import Register

Rows = list[dict[str, Any]]


class WordOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.1, gt=0, le=1, description="Share of the words changed in an augmented text.")
    prob: float = Field(1.0, gt=0, le=1, description="Share of the rows augmented.")
    keep_original: bool = Field(False, description="Add augmented copies instead of replacing rows.")


def swap(words: list[str], p: float, rng: random.Random) -> list[str]:
    words = list(words)
    for _ in range(max(1, round(p * len(words))) if len(words) > 1 else 0):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    return words


def delete(words: list[str], p: float, rng: random.Random) -> list[str]:
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(words)]


def _augmentation(
    change: Callable[[list[str], float, random.Random], list[str]],
) -> Callable[[WordOptions], Callable[[Rows, random.Random], Rows]]:
    def factory(options: WordOptions) -> Callable[[Rows, random.Random], Rows]:
        def apply(rows: Rows, rng: random.Random) -> Rows:
            result = list(rows) if options.keep_original else []
            for row in rows:
                if rng.random() >= options.prob:
                    if not options.keep_original:
                        result.append(row)
                    continue
                new = dict(row)
                for key in ("text", "text_pair"):
                    if isinstance(row.get(key), str):
                        new[key] = " ".join(change(row[key].split(), options.p, rng))
                result.append(new)
            return result

        return apply

    return factory


random_swap = _augmentation(swap)
random_swap.__doc__ = "Swap random pairs of words."
random_deletion = _augmentation(delete)
random_deletion.__doc__ = "Delete each word with probability p (never all)."


def declare(register: Register) -> None:
    register("random_swap", random_swap, options=WordOptions)
    register("random_deletion", random_deletion, options=WordOptions)
