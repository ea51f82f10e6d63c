"""Augmentations of the training split, one room each:

- ``lexical``: word-level edits (EDA, Wei & Zou 2019): random swap, deletion, insertion, synonym replacement;
- ``models``: rewrites by a model: back-translation through a sequence-to-sequence pair, contextual substitution
  by a masked language model;
- ``mentions``: tagging's mention replacement (Dai & Adel 2020);
- ``filtering``: the label-preservation filter, which drops augmented rows a finished run labels differently.

Each module declares its components in a ``declare(register)`` function; this plugin's one hook calls them all.
Declaration imports no torch: the heavy code is imported when an augmentation is built.
"""

from __future__ import annotations

from engine import Register, hookimpl
from engine_builtins.augmentations import filtering, lexical, mentions, models

# 0.2's module paths: ``engine_builtins.augmentations.random_swap`` and friends.
from engine_builtins.augmentations.lexical import WordOptions, delete, random_deletion, random_swap, swap

__all__ = ["WordOptions", "augment", "delete", "random_deletion", "random_swap", "swap"]


@hookimpl
def augment(register: Register) -> None:
    for room in (lexical, models, mentions, filtering):
        room.declare(register)
