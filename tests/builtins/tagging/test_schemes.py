"""Tag schemes: spans read exactly as seqeval reads them, conversion to BIO that keeps every span, detection."""

import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from engine_builtins.tagging.schemes import (
    Entity,
    TagError,
    check_scheme,
    detect_scheme,
    entities,
    normalize,
    split_tag,
)

ALPHABET = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-creative-work", "I-creative-work"]


def seqeval_spans(tags):
    return [Entity(t, start, end + 1) for t, start, end in get_entities(list(tags))]


@pytest.mark.parametrize("tags, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    # IOB1: I- starts an entity; B- only separates two adjacent entities of one type.
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]),
    # BIOES and BILOU.
    (["B-PER", "E-PER", "S-LOC", "O"], [("PER", 0, 2), ("LOC", 2, 3)]),
    (["B-PER", "L-PER", "U-LOC", "O"], [("PER", 0, 2), ("LOC", 2, 3)]),
    # Ill-formed: a type change inside an entity splits it; I- after O starts one.
    (["B-PER", "I-LOC", "O", "I-PER"], [("PER", 0, 1), ("LOC", 1, 2), ("PER", 3, 4)]),
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)]),
])
def test_spans(tags, expected):
    assert entities(tags) == [Entity(*e) for e in expected]


def test_spans_match_seqeval_on_random_sequences_well_formed_or_not():
    rng = random.Random(7)
    for _ in range(3000):
        tags = [rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))]
        assert entities(tags) == seqeval_spans(tags), tags


def test_bilou_reads_as_the_same_bioes_sequence_in_seqeval():
    rng = random.Random(3)
    to_bilou = {"E": "L", "S": "U"}
    for _ in range(500):
        bioes = [rng.choice(ALPHABET) for _ in range(rng.randint(1, 10))]
        bilou = [t if t == "O" else to_bilou.get(t[0], t[0]) + t[1:] for t in bioes]
        assert entities(bilou) == seqeval_spans(bioes)


def test_normalize_gives_well_formed_bio_with_the_same_spans():
    rng = random.Random(11)
    for _ in range(2000):
        tags = [rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))]
        bio = normalize(tags)
        assert entities(bio) == entities(tags)
        assert all(t == "O" or t[0] in "BI" for t in bio)
        assert normalize(bio) == bio


@pytest.mark.parametrize("sequences, scheme", [
    ([["B-PER", "I-PER", "O"], ["O"]], "bio"),
    ([["I-PER", "I-PER", "O", "B-PER"]], "iob1"),
    ([["B-PER", "E-PER"], ["S-LOC"]], "bioes"),
    ([["B-PER", "L-PER"], ["U-LOC"]], "bilou"),
    ([["O", "O"]], "bio"),
])
def test_detect(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_mixing_bioes_and_bilou_is_an_error():
    with pytest.raises(ValueError, match=r"mix BIOES prefixes \(S-\) with BILOU prefixes \(L-\)"):
        detect_scheme([["S-PER"], ["B-LOC", "L-LOC"]])


def test_check_scheme_points_at_the_first_foreign_tag():
    check_scheme(["B-PER", "I-PER", "O"], "iob1")
    with pytest.raises(TagError, match=r"'E-PER' is not a BIO tag") as info:
        check_scheme(["B-PER", "E-PER"], "bio")
    assert info.value.index == 1


@pytest.mark.parametrize("tag", ["PER", "b-PER", "B_PER", "B-", "BI-PER", "X-PER", ""])
def test_malformed_tags_are_rejected(tag):
    with pytest.raises(ValueError, match="is not 'O' or PREFIX-TYPE"):
        split_tag(tag)
