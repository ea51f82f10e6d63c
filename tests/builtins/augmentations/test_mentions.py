"""mention_replacement (Dai & Adel 2020) against brute force: on real sentences and on random ones, in every tag
scheme, each output row keeps one tag per word and a valid sequence, its words outside entities as they were, and
every mention in it is a mention of the same type from the training rows."""

from __future__ import annotations

import copy
import random

import pytest

from engine import DataError
from engine_builtins.augmentations import mentions
from engine_builtins.augmentations.mentions import MentionOptions, mention_replacement

# CoNLL-2003-style sentences (BIO), words as the corpus has them.
SENTENCES = [
    ("EU rejects German call to boycott British lamb .", "B-ORG O B-MISC O O O B-MISC O O"),
    ("Peter Blackburn", "B-PER I-PER"),
    ("BRUSSELS 1996-08-22", "B-LOC O"),
    ("The European Commission said on Thursday it disagreed with German advice to consumers to shun British lamb .",
     "O B-ORG I-ORG O O O O O O B-MISC O O O O O B-MISC O O"),
    ("Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said on Wednesday .",
     "B-LOC O O O O B-ORG I-ORG O O O B-PER I-PER O O O O"),
    ("Fischler proposed EU-wide measures after reports from Britain and France .",
     "B-PER O B-MISC O O O O B-LOC O B-LOC O"),
    ("Spanish Farm Minister Loyola de Palacio had earlier accused Fischler at an EU farm ministers ' meeting .",
     "B-MISC O O B-PER I-PER I-PER O O O B-PER O O B-ORG O O O O O"),
    ("It is not clear .", "O O O O O"),
    ("Rabinovich is winding up his term as ambassador .", "B-PER O O O O O O O O"),
    ("Sheep have long been known to contract scrapie .", "O O O O O O O O O"),
]


def bio_rows() -> list[dict]:
    return [{"_line": i * 10 + 1, "text": text.split(), "label": tags.split()} for i, (text, tags) in
            enumerate(SENTENCES)]


# --- brute force: each scheme read and checked on its own, without engine_builtins.tagging.schemes -----------------


def spans_bio(tags: list[str]) -> list[tuple[str, int, int]]:
    """Mentions of well-formed BIO: B-X then I-X while the type stays."""
    found, i = [], 0
    while i < len(tags):
        if tags[i].startswith("B-"):
            kind, j = tags[i][2:], i + 1
            while j < len(tags) and tags[j] == f"I-{kind}":
                j += 1
            found.append((kind, i, j))
            i = j
        else:
            assert tags[i] == "O", tags
            i += 1
    return found


def spans_last(tags: list[str], single: str, last: str) -> list[tuple[str, int, int]]:
    """Mentions of well-formed BIOES (S, E) or BILOU (U, L)."""
    found, i = [], 0
    while i < len(tags):
        prefix, kind = tags[i][:1], tags[i][2:]
        if prefix == single:
            found.append((kind, i, i + 1))
            i += 1
        elif prefix == "B":
            j = i + 1
            while tags[j] == f"I-{kind}":
                j += 1
            assert tags[j] == f"{last}-{kind}", tags
            found.append((kind, i, j + 1))
            i = j + 1
        else:
            assert tags[i] == "O", tags
            i += 1
    return found


def spans_iob1(tags: list[str]) -> list[tuple[str, int, int]]:
    """Mentions of IOB1: I-X continues a mention of X; B-X starts one right after another of X."""
    found: list[list] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, kind = tag[:1], tag[2:]
        if prefix == "I" and found and found[-1][0] == kind and found[-1][2] == i:
            found[-1][2] = i + 1
        else:
            found.append([kind, i, i + 1])
    return [tuple(m) for m in found]


def valid(tags: list[str], scheme: str) -> bool:
    """Whether ``tags`` is a well-formed sequence of ``scheme``."""
    inside = None  # BIOES/BILOU: the type of the mention left open
    for i, tag in enumerate(tags):
        prefix, kind = ("O", "") if tag == "O" else (tag[:1], tag[2:])
        if scheme == "bio":
            if prefix not in "OBI" or (prefix == "I" and (i == 0 or tags[i - 1] not in (f"B-{kind}", f"I-{kind}"))):
                return False
        elif scheme == "iob1":
            if prefix not in "OBI":
                return False
            if prefix == "B" and (i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != kind):
                return False
        else:
            single, last = ("S", "E") if scheme == "bioes" else ("U", "L")
            if prefix not in ("O", "B", "I", single, last):
                return False
            if inside is None and prefix in ("I", last):
                return False  # inside a mention that never began
            if inside is not None and (prefix not in ("I", last) or kind != inside):
                return False  # a mention left open
            inside = kind if prefix in ("B", "I") else None
    return scheme in ("bio", "iob1") or inside is None


def read(tags: list[str], scheme: str) -> list[tuple[str, int, int]]:
    if scheme == "bio":
        return spans_bio(tags)
    if scheme == "iob1":
        return spans_iob1(tags)
    return spans_last(tags, *(("S", "E") if scheme == "bioes" else ("U", "L")))


def write(spans: list[tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    """Tags of ``scheme`` for the mentions ``spans``."""
    tags = ["O"] * length
    for n, (kind, start, end) in enumerate(spans):
        for i in range(start, end):
            tags[i] = f"I-{kind}"
        if scheme == "bio":
            tags[start] = f"B-{kind}"
        elif scheme == "iob1":
            before = spans[n - 1] if n else None
            if before and before[0] == kind and before[2] == start:
                tags[start] = f"B-{kind}"
        else:
            single, last = ("S", "E") if scheme == "bioes" else ("U", "L")
            if end - start == 1:
                tags[start] = f"{single}-{kind}"
            else:
                tags[start], tags[end - 1] = f"B-{kind}", f"{last}-{kind}"
    return tags


def in_scheme(rows: list[dict], scheme: str) -> list[dict]:
    return [{**row, "label": write(spans_bio(row["label"]), len(row["label"]), scheme)} for row in rows]


def segments(words: list[str], tags: list[str], scheme: str) -> list[tuple]:
    """The row as a sequence of ("O", word, tag) and (type, mention words)."""
    out, at = [], 0
    for kind, start, end in read(tags, scheme):
        out.extend(("O", w, t) for w, t in zip(words[at:start], tags[at:start]))
        out.append((kind, tuple(words[start:end])))
        at = end
    out.extend(("O", w, t) for w, t in zip(words[at:], tags[at:]))
    return out


def known_mentions(rows: list[dict], scheme: str) -> dict[str, set[tuple[str, ...]]]:
    found: dict[str, set] = {}
    for row in rows:
        for kind, start, end in read(row["label"], scheme):
            found.setdefault(kind, set()).add(tuple(row["text"][start:end]))
    return found


def check_row(before: dict, after: dict, inventory: dict, scheme: str) -> int:
    """``after`` is ``before`` with some mentions replaced by mentions of their type from ``inventory``; returns how
    many were replaced."""
    assert len(after["text"]) == len(after["label"])
    assert valid(after["label"], scheme), after["label"]
    old, new = segments(before["text"], before["label"], scheme), segments(after["text"], after["label"], scheme)
    assert len(old) == len(new)
    replaced = 0
    for a, b in zip(old, new):
        if a[0] == "O":
            assert a == b  # a word outside entities: the same word with the same tag, in the same place
            continue
        assert b[0] == a[0]  # the same type
        assert b[1] in inventory[a[0]]  # a mention of that type seen in the training rows
        replaced += a[1] != b[1]
    for key in set(before) | set(after):
        if key not in ("text", "label"):
            assert after[key] == before[key]
    return replaced


def run(rows: list[dict], seed: int = 0, **options) -> list[dict]:
    return mention_replacement(MentionOptions(**options))(rows, random.Random(seed))


# --- tests -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bioes", "bilou"])
def test_real_sentences_every_scheme(scheme):
    rows = in_scheme(bio_rows(), scheme)
    before = copy.deepcopy(rows)
    inventory = known_mentions(rows, scheme)
    out = run(rows, p=1.0)
    assert rows == before  # the input rows are not changed
    assert len(out) == len(rows)
    replaced = sum(check_row(b, a, inventory, scheme) for b, a in zip(rows, out))
    # p = 1: every mention whose type has another mention is replaced by another one.
    expected = sum(1 for row in rows for kind, s, e in read(row["label"], scheme)
                   if inventory[kind] - {tuple(row["text"][s:e])})
    assert replaced == expected > 10
    # Lengths change with the mentions ("Peter Blackburn" for "Fischler"), and the tags follow.
    assert any(len(a["text"]) != len(b["text"]) for a, b in zip(out, rows))


def test_a_replacement_on_real_words():
    rows = bio_rows()
    out = run(rows, seed=3, p=1.0)
    persons = {("Peter", "Blackburn"), ("Werner", "Zwingmann"), ("Fischler",), ("Loyola", "de", "Palacio"),
               ("Rabinovich",)}
    first = out[1]  # "Peter Blackburn": a person for a person
    assert tuple(first["text"]) in persons - {("Peter", "Blackburn")}
    assert first["label"] == ["B-PER"] + ["I-PER"] * (len(first["text"]) - 1)
    # The sentences without entities pass as the same objects.
    assert out[7] is rows[7] and out[9] is rows[9]


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bioes", "bilou"])
def test_random_rows_against_brute_force(scheme):
    rng = random.Random(7)
    kinds = {"PER": ["ann", "bob lee", "carl o dunn", "dee"], "LOC": ["rome", "new york", "rio de janeiro"],
             "ORG": ["un", "red cross"]}
    filler = ["the", "a", "of", "in", "said", "to", "and"]
    rows = []
    for n in range(300):
        words, spans = [], []
        for _ in range(rng.randint(0, 9)):
            if rng.random() < 0.4:
                kind = rng.choice(sorted(kinds))
                mention = rng.choice(kinds[kind]).split()
                spans.append((kind, len(words), len(words) + len(mention)))
                words.extend(mention)
            else:
                words.append(rng.choice(filler))
        rows.append({"text": words, "label": write(spans, len(words), scheme), "_origin": n})
    inventory = known_mentions(rows, scheme)
    for seed in range(3):
        out = run(rows, seed=seed, p=0.5, prob=0.7)
        assert len(out) == len(rows)
        replaced = sum(check_row(b, a, inventory, scheme) for b, a in zip(rows, out))
        assert replaced > 100
        unchanged = [a is b for a, b in zip(out, rows)]
        assert 0 < sum(unchanged) < len(rows)
        for a, b in zip(out, rows):
            assert (a is b) == (a == b)  # a row is copied only when a mention changed


def test_seeded():
    rows = bio_rows()
    assert run(rows, seed=1, p=0.5) == run(rows, seed=1, p=0.5)
    assert run(rows, seed=1, p=0.5) != run(rows, seed=2, p=0.5)


def test_keep_original_adds_changed_copies():
    rows = bio_rows()
    out = run(rows, p=1.0, keep_original=True)
    assert all(a is b for a, b in zip(out, rows))  # the originals first, as themselves
    added = out[len(rows):]
    changed = [b for a, b in zip(rows, run(rows, p=1.0)) if a is not b]
    assert added == changed and len(added) == 8  # the same draws; only rows that changed are added


def test_prob_leaves_rows():
    rows = bio_rows() * 20
    out = run(rows, p=1.0, prob=0.3)
    changed = sum(a is not b for a, b in zip(out, rows))
    assert 20 < changed < 80  # about 0.3 of the 140 rows that can change


def test_inventory_is_the_original_rows():
    rows = bio_rows()
    # A row an earlier augmentation produced: its mention is never spread to other rows.
    rows.append({"text": ["Zorblat", "spoke"], "label": ["B-PER", "O"], "_augmented": "synonym_replacement"})
    for seed in range(20):
        out = run(rows, seed=seed, p=1.0)
        assert not any("Zorblat" in row["text"] for row in out[:-1])
        assert out[-1]["text"][0] != "Zorblat"  # its own mention is replaced from the originals
    assert mentions.inventory([rows[-1]]) == {"PER": [("Zorblat",)]}  # a chunk of augmented rows only: them


def test_strings_stay_strings():
    rows = [{"text": "Paris is in France", "label": "B-LOC O O B-LOC"}, {"text": "Rome", "label": "B-LOC"}]
    out = run(rows, seed=0, p=1.0)
    for row in out:
        assert isinstance(row["text"], str) and isinstance(row["label"], str)
        assert len(row["text"].split()) == len(row["label"].split())
    assert {w for row in out for w in row["text"].split()} <= {"Paris", "is", "in", "France", "Rome"}


def test_rows_without_tags_or_mentions_pass():
    rows = [{"text": ["no", "tags"]}, {"text": ["all", "outside"], "label": ["O", "O"]}]
    out = run(rows, p=1.0)
    assert all(a is b for a, b in zip(out, rows))


def test_tags_that_are_not_entity_tags():
    with pytest.raises(DataError, match="mention_replacement reads entity tags"):
        run([{"text": ["a", "dog"], "label": ["DT", "NN"], "_line": 4}])


def test_mention_tags_per_scheme():
    tags = mentions.mention_tags
    assert tags("LOC", 3, "bio", "B") == ["B-LOC", "I-LOC", "I-LOC"]
    assert tags("LOC", 1, "bioes", "S") == ["S-LOC"]
    assert tags("LOC", 3, "bioes", "B") == ["B-LOC", "I-LOC", "E-LOC"]
    assert tags("LOC", 1, "bilou", "U") == ["U-LOC"]
    assert tags("LOC", 2, "bilou", "B") == ["B-LOC", "L-LOC"]
    assert tags("LOC", 2, "iob1", "I") == ["I-LOC", "I-LOC"]
    assert tags("LOC", 2, "iob1", "B") == ["B-LOC", "I-LOC"]


def test_declared_for_tokens_only():
    declared = {}

    def register(name, factory, **kwargs):
        declared[name] = (factory, kwargs)

    mentions.declare(register)
    factory, kwargs = declared["mention_replacement"]
    assert factory is mention_replacement
    assert kwargs["shapes"] == ["tokens"] and kwargs["options"] is MentionOptions


def test_the_only_mention_of_its_type_stays():
    rows = [{"text": ["Ann", "met", "Bob", "in", "Rome"], "label": ["B-PER", "O", "B-PER", "O", "B-LOC"]}]
    for seed in range(10):
        out = run(rows, seed=seed, p=1.0)[0]
        assert out["text"] == ["Bob", "met", "Ann", "in", "Rome"]  # each person for the other; Rome has no other


def test_the_brute_force_checker_rejects_what_it_should():
    assert valid(["B-PER", "I-PER", "O"], "bio") and not valid(["O", "I-PER"], "bio")
    assert not valid(["B-PER", "I-LOC"], "bio") and not valid(["S-PER"], "bio")
    assert valid(["I-PER", "B-PER", "O", "I-LOC"], "iob1") and not valid(["O", "B-PER"], "iob1")
    assert valid(["S-PER", "B-LOC", "I-LOC", "E-LOC"], "bioes") and not valid(["B-LOC", "O"], "bioes")
    assert not valid(["B-LOC", "E-PER"], "bioes") and not valid(["E-LOC"], "bioes") and not valid(["B-LOC"], "bioes")
    assert valid(["U-PER", "B-LOC", "L-LOC"], "bilou") and not valid(["S-PER"], "bilou")
