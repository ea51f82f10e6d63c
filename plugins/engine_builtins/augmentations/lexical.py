"""Word-level augmentations of training texts (EDA, Wei & Zou 2019): random swap, random deletion, synonym replacement
and random insertion.

Each acts on the words of a row, with ``p`` the share of the words changed:

- ``random_swap``: swaps ``max(1, round(p * words))`` random pairs of words;
- ``random_deletion``: deletes each word with probability ``p`` (never all of them);
- ``synonym_replacement``: replaces ``max(1, round(p * words))`` random words, stop words excepted, each by a random
  synonym from the source (a word without one is skipped for another word), written in the case of the word it
  replaces (``Good`` -> ``Fine``, ``GOOD`` -> ``FINE``); punctuation stuck to a word (``good,``) stays;
- ``random_insertion``: ``max(1, round(p * words))`` times, takes a random word that is no stop word and has a
  synonym, and inserts one of its synonyms at a random position.

Synonyms come from ``engine_builtins.augmentations.synonyms`` (the option ``source``; the default, WordNet 3.0's
synonym sets shipped inside engine, works offline).

The rows they handle (``shapes``):

- ``single`` and ``pair``: ``text`` (and ``text_pair``) strings, split at white space, each string on its own;
- ``tokens`` (tagging: ``text`` a list of words, ``label`` one tag per word, as BIO, IOB1, BIOES or BILOU tags; a
  whitespace-separated string of each is read the same way): only the words tagged ``O`` are touched, so the tags
  stay one per word and every entity keeps its words, in order: swaps happen among the ``O`` words, deletion deletes
  ``O`` words (never one right before an ``I-``/``E-``/``L-`` tag, which could join two entities), replacement puts a
  single-word synonym in an ``O`` word's place, insertion inserts a single-word synonym of an ``O`` word, tagged
  ``O``, only where it splits no entity (not before an ``I-``/``E-``/``L-`` tag). ``p`` is then the share of the
  ``O`` words.

A row an augmentation leaves as it was (no synonym found, a swap of equal words) passes through as itself: with
``keep_original`` it is not added a second time. Each draw comes from the generator the core passes, so a seed gives
the same rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine import Register
from engine_builtins.augmentations.paths import from_task_folder

Rows = list[dict[str, Any]]
#: A word-level change of a text: its words (and tags, None for plain texts) in, changed words and tags out.
Change = Callable[[list[str], list[str] | None, random.Random], tuple[list[str], list[str] | None]]

SHAPES = ["single", "pair", "tokens"]


class WordOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.1, gt=0, le=1, description="Share of the words changed in an augmented text.")
    prob: float = Field(1.0, gt=0, le=1, description="Share of the rows augmented.")
    keep_original: bool = Field(False, description="Add augmented copies instead of replacing rows.")


class SynonymOptions(WordOptions):
    source: Literal["bundled", "wordnet", "nltk", "wn", "thesaurus"] = Field(
        "bundled", description="Where synonyms come from: 'bundled' (WordNet 3.0's synonym sets shipped with engine, "
        "offline), 'wordnet' (a WordNet database folder given as 'path', else NLTK's WordNet, else the wn package's), "
        "'nltk', 'wn', or 'thesaurus' (your file, given as 'path').")
    path: str | None = Field(None, description="Source 'wordnet': a WordNet database folder (WordNet's dict/); source "
                             "'thesaurus': the file (lines such as 'happy, glad, cheerful', optionally prefixed "
                             "'adj:'; or JSON {word: [synonyms]}).")
    lexicon: str | None = Field(None, description="Source 'wn' (or 'wordnet' through wn): the lexicon, e.g. "
                                "'oewn:2024' (default: the first English one installed).")
    pos: list[Literal["noun", "verb", "adj", "adv"]] | None = Field(
        None, min_length=1, description="Parts of speech whose synonyms are used (default: all); groups of a source "
        "without parts of speech are always used.")
    stop_words: Literal["english"] | list[str] = Field(
        "english", description="Words never replaced nor used for insertion: 'english' (EDA's list, NLTK's English "
        "stop words), or your own list ([] for none); compared in lower case.")
    phrases: bool = Field(True, description="Whether a multi-word synonym ('look up') may be used in a text; tagged "
                          "words (tokens rows) only ever take single words.")

    @field_validator("path")
    @classmethod
    def _from_task_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        return from_task_folder(value, info)

    @model_validator(mode="after")
    def _source_options(self) -> SynonymOptions:
        if self.source == "thesaurus" and self.path is None:
            raise ValueError("source 'thesaurus' reads a file: name it with 'path'")
        if self.path is not None and self.source not in ("wordnet", "thesaurus"):
            raise ValueError(f"'path' is read by source 'wordnet' (a WordNet folder) or 'thesaurus' (a file), not by "
                             f"source {self.source!r}")
        if self.lexicon is not None and self.source not in ("wn", "wordnet"):
            raise ValueError(f"'lexicon' is read by source 'wn', not by source {self.source!r}")
        if self.lexicon is not None and self.path is not None:
            raise ValueError("give 'path' (a WordNet folder) or 'lexicon' (the wn package's), not both")
        return self


# --- the changes on word lists ----------------------------------------------------------------------------------

OUTSIDE = "O"
_TAG = re.compile(r"O|[BIESLU]-.+")
_CONTINUES = ("I-", "E-", "L-")  # a tag that may continue the entity of the word before it


def swap(words: list[str], p: float, rng: random.Random) -> list[str]:
    """``words`` with ``max(1, round(p * n))`` swaps of two different places (a word is never swapped with
    itself, which would leave a short row as it was)."""
    words = list(words)
    for _ in range(max(1, round(p * len(words))) if len(words) > 1 else 0):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return words


def delete(words: list[str], p: float, rng: random.Random) -> list[str]:
    if not words:
        return words
    kept = [w for w in words if rng.random() >= p]
    return kept or [rng.choice(words)]


def swap_outside(words: list[str], tags: list[str], p: float, rng: random.Random) -> list[str]:
    """``words`` with ``max(1, round(p * n))`` swaps among the ``n`` words tagged ``O`` (the tags stay)."""
    outside = [i for i, tag in enumerate(tags) if tag == OUTSIDE]
    words = list(words)
    for _ in range(max(1, round(p * len(outside))) if len(outside) > 1 else 0):
        i, j = rng.sample(outside, 2)
        words[i], words[j] = words[j], words[i]
    return words


def deletable(tags: Sequence[str]) -> list[bool]:
    """Which words may be deleted without changing an entity: those tagged ``O`` that do not stand right before a
    tag continuing an entity (in IOB1, ``I-PER O I-PER`` is two entities; without the ``O``, one)."""
    return [tag == OUTSIDE and not (k + 1 < len(tags) and tags[k + 1].startswith(_CONTINUES))
            for k, tag in enumerate(tags)]


def delete_outside(words: list[str], tags: list[str], p: float,
                   rng: random.Random) -> tuple[list[str], list[str]]:
    """``words`` and ``tags`` without each deletable word (``deletable``) drawn with probability ``p``; one word at
    least is kept."""
    kept = [k for k, free in enumerate(deletable(tags)) if not (free and rng.random() < p)]
    if not kept:  # every word was an O word and every one was drawn
        kept = [rng.randrange(len(words))]
    return [words[k] for k in kept], [tags[k] for k in kept]


def insertable(tags: Sequence[str]) -> list[int]:
    """The positions (0 to ``len(tags)``) where a word tagged ``O`` can go without splitting an entity: before a word
    tagged ``O``, ``B-``, ``S-`` or ``U-``, and at the end."""
    return [k for k in range(len(tags) + 1) if k == len(tags) or not tags[k].startswith(_CONTINUES)]


_AFFIXES = re.compile(r"(\W*)(.*?)(\W*)", re.DOTALL)  # punctuation before, the word, punctuation after


def _split(token: str) -> tuple[str, str, str]:
    match = _AFFIXES.fullmatch(token)
    assert match is not None
    before, core, after = match.groups()
    return before, core, after


def cased(synonym: str, like: str) -> str:
    """``synonym`` written in the case of ``like``: all capitals for an all-capitals word of two letters or more, a
    capital first letter for a capitalised word, else as the source writes it."""
    if len(like) > 1 and like.isupper():
        return synonym.upper()
    if like[:1].isupper():
        return synonym[:1].upper() + synonym[1:]
    return synonym


class Synonyms:
    """What ``synonym_replacement`` and ``random_insertion`` share: the source, the stop words, the parts of speech."""

    def __init__(self, options: SynonymOptions) -> None:
        from engine_builtins.augmentations import synonyms

        self.source = synonyms.load(options.source, options.path, options.lexicon)
        self.stop = synonyms.ENGLISH_STOP_WORDS if options.stop_words == "english" else \
            frozenset(w.lower() for w in options.stop_words)
        self.pos = frozenset(options.pos) if options.pos else None
        self.phrases = options.phrases
        self._kept: dict[tuple[str, bool], tuple[str, ...]] = {}  # synonyms less the stop words, by (word, single)

    def of(self, token: str, single: bool) -> tuple[str, ...]:
        """The synonyms of a token (its punctuation aside) that are no stop words (WordNet has "in" for "inch",
        "too" for "also"); none for a stop word."""
        core = _split(token)[1]
        if not core or core.lower() in self.stop:
            return ()
        found = self.source.synonyms(core, self.pos, single)
        if not found or not self.stop:
            return found
        kept = self._kept.get((core, single))  # the source's words only (it caches no word without synonyms)
        if kept is None:
            kept = self._kept[(core, single)] = tuple(s for s in found if s.lower() not in self.stop)
        return kept

    def replace(self, words: list[str], tags: list[str] | None, p: float, rng: random.Random) -> list[str]:
        """EDA's synonym replacement: ``max(1, round(p * n))`` of the ``n`` words it may touch (all, or the ``O``
        words), in random order, each by a random synonym; words without one are skipped."""
        single = tags is not None or not self.phrases
        free = [k for k in range(len(words)) if tags is None or tags[k] == OUTSIDE]
        wanted = max(1, round(p * len(free))) if free else 0
        rng.shuffle(free)
        words = list(words)
        for k in free:
            if wanted == 0:
                break
            found = self.of(words[k], single)
            if found:
                before, core, after = _split(words[k])
                words[k] = before + cased(rng.choice(found), core) + after
                wanted -= 1
        return words

    def insert(self, words: list[str], tags: list[str] | None, p: float,
               rng: random.Random) -> tuple[list[str], list[str] | None]:
        """EDA's random insertion: ``max(1, round(p * n))`` times a synonym of a random word that has one (of the
        ``n`` it may touch) at a random position (for tagged words: tagged ``O``, where it splits no entity)."""
        single = tags is not None or not self.phrases
        free = [k for k in range(len(words)) if tags is None or tags[k] == OUTSIDE]
        candidates = [found for found in (self.of(words[k], single) for k in free) if found]
        if not candidates:
            return words, tags
        words, tags = list(words), (list(tags) if tags is not None else None)
        for _ in range(max(1, round(p * len(free)))):
            synonym = rng.choice(rng.choice(candidates))
            if tags is None:
                words.insert(rng.randint(0, len(words)), synonym)
            else:
                at = rng.choice(insertable(tags))
                words.insert(at, synonym)
                tags.insert(at, OUTSIDE)
        return words, tags


# --- rows -------------------------------------------------------------------------------------------------------


def tagged(row: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """A tokens row's words and tags, or None for a row of plain text (or one whose tags do not align with its
    words: it is left as it is). ``text`` a list of words or a string of them, ``label`` one tag per word (``O``,
    ``B-PER``...), as a list or a string."""
    text, label = row.get("text"), row.get("label")
    if "text_pair" in row or text is None or label is None:
        return None
    words = text.split() if isinstance(text, str) else [str(w) for w in text] if isinstance(text, list | tuple) \
        else None
    tags = label.split() if isinstance(label, str) else list(label) if isinstance(label, list | tuple) else None
    if not words or tags is None or len(tags) != len(words):
        return None
    if not all(isinstance(tag, str) and _TAG.fullmatch(tag) for tag in tags):
        return None
    return words, tags


def changed(row: dict[str, Any], change: Change, rng: random.Random) -> dict[str, Any] | None:
    """A new row with ``change`` applied to its words, or None when nothing changed (or it cannot be changed)."""
    found = tagged(row)
    if found is not None:
        words, tags = found
        new_words, new_tags = change(words, tags, rng)
        if new_words == words and new_tags == tags:
            return None
        assert new_tags is not None and len(new_tags) == len(new_words)
        rewritten = dict(row)
        rewritten["text"] = " ".join(new_words) if isinstance(row["text"], str) else new_words
        rewritten["label"] = " ".join(new_tags) if isinstance(row["label"], str) else new_tags
        return rewritten
    new: dict[str, Any] | None = None
    for key in ("text", "text_pair"):
        if isinstance(row.get(key), str):
            words = row[key].split()
            new_words, _ = change(words, None, rng)
            if new_words != words:
                new = new if new is not None else dict(row)
                new[key] = " ".join(new_words)
    return new


def augmentation(options: WordOptions, change: Change) -> Callable[[Rows, random.Random], Rows]:
    """The augmentation that applies ``change`` to a share ``prob`` of the rows (rows it leaves as they were pass
    through as themselves; with ``keep_original``, the changed rows are added after all the originals)."""

    def apply(rows: Rows, rng: random.Random) -> Rows:
        result = list(rows) if options.keep_original else []
        for row in rows:
            new = changed(row, change, rng) if rng.random() < options.prob else None
            if new is not None:
                result.append(new)
            elif not options.keep_original:
                result.append(row)
        return result

    return apply


class Fingerprinted:
    """An augmentation with a ``fingerprint`` (what identifies its synonym source's content), which the core adds to
    the augmented split's cache key."""

    def __init__(self, apply: Callable[[Rows, random.Random], Rows], fingerprint: str) -> None:
        self.apply, self.fingerprint = apply, fingerprint

    def __call__(self, rows: Rows, rng: random.Random) -> Rows:
        return self.apply(rows, rng)


# --- the components ---------------------------------------------------------------------------------------------


def random_swap(options: WordOptions) -> Callable[[Rows, random.Random], Rows]:
    """Swap random pairs of words."""

    def change(words: list[str], tags: list[str] | None, rng: random.Random) -> tuple[list[str], list[str] | None]:
        if tags is None:
            return swap(words, options.p, rng), None
        return swap_outside(words, tags, options.p, rng), tags

    return augmentation(options, change)


def random_deletion(options: WordOptions) -> Callable[[Rows, random.Random], Rows]:
    """Delete each word with probability p (never all)."""

    def change(words: list[str], tags: list[str] | None, rng: random.Random) -> tuple[list[str], list[str] | None]:
        if tags is None:
            return delete(words, options.p, rng), None
        return delete_outside(words, tags, options.p, rng)

    return augmentation(options, change)


def synonym_replacement(options: SynonymOptions) -> Fingerprinted:
    """Replace random words (no stop words) by a synonym (EDA's synonym replacement)."""
    synonyms = Synonyms(options)

    def change(words: list[str], tags: list[str] | None, rng: random.Random) -> tuple[list[str], list[str] | None]:
        return synonyms.replace(words, tags, options.p, rng), tags

    return Fingerprinted(augmentation(options, change), synonyms.source.fingerprint)


def random_insertion(options: SynonymOptions) -> Fingerprinted:
    """Insert synonyms of random words (no stop words) at random positions (EDA's random insertion)."""
    synonyms = Synonyms(options)

    def change(words: list[str], tags: list[str] | None, rng: random.Random) -> tuple[list[str], list[str] | None]:
        return synonyms.insert(words, tags, options.p, rng)

    return Fingerprinted(augmentation(options, change), synonyms.source.fingerprint)


def declare(register: Register) -> None:
    register("random_swap", random_swap, options=WordOptions, shapes=SHAPES)
    register("random_deletion", random_deletion, options=WordOptions, shapes=SHAPES)
    register("synonym_replacement", synonym_replacement, options=SynonymOptions, shapes=SHAPES)
    register("random_insertion", random_insertion, options=SynonymOptions, shapes=SHAPES)
