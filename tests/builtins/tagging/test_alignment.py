"""Words to subwords: which position carries each word's tag, words without subwords, and windows over sentences
longer than the model's limit (every word read, none cut)."""

import itertools
import random

import pytest
from transformers import AutoTokenizer

from engine_builtins.tagging.alignment import merge_windows, plan_windows, tokenize_sentences, window_features


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def subwords(tokenizer, feature, positions):
    return [tokenizer.convert_ids_to_tokens(feature["input_ids"][p]) for p in positions]


@pytest.mark.parametrize("mode, tagged, read", [
    ("first", ["john", "loved", "london"], ["john", "loved", "london"]),
    ("last", ["##y", "loved", "##r"], ["##y", "loved", "##r"]),
    ("all", ["john", "##n", "##y", "loved", "london", "##e", "##r"], ["john", "loved", "london"]),
])
def test_which_subwords_carry_the_tag(tokenizer, mode, tagged, read):
    [tok] = tokenize_sentences(tokenizer, [["Johnny", "loved", "Londoner"]])
    # Tags B-PER=1, O=0, B-LOC=3; "all" continues B- as I- (2, 4) on later subwords.
    [feature] = window_features(tok, [1, 0, 3], 128, 32, mode, continuation=[0, 2, 2, 4, 4])
    assert subwords(tokenizer, feature, feature["tag_positions"]) == tagged
    assert subwords(tokenizer, feature, feature["word_positions"]) == read
    expected = {"first": [1, 0, 3], "last": [1, 0, 3], "all": [1, 2, 2, 0, 3, 4, 4]}[mode]
    assert feature["labels"] == expected
    assert feature["input_ids"][0] == tokenizer.cls_token_id and feature["input_ids"][-1] == tokenizer.sep_token_id


def test_words_without_subwords_get_the_unknown_token(tokenizer):
    [tok] = tokenize_sentences(tokenizer, [["the", "", "\ufeff", "ke s", "movie"]])
    [feature] = window_features(tok, None, 128, 32, "first", None)
    assert subwords(tokenizer, feature, feature["word_positions"]) == ["the", "[UNK]", "[UNK]", "k", "movie"]
    assert "labels" not in feature


def test_long_sentences_become_overlapping_windows_that_cover_every_word(tokenizer):
    rng = random.Random(0)
    words = [rng.choice(["the", "johnny", "paris", "a", "microsoft", "x"]) for _ in range(300)]
    tags = [i % 5 for i in range(len(words))]
    [tok] = tokenize_sentences(tokenizer, [words])
    assert len(tok.content["input_ids"]) > 128
    features = window_features(tok, tags, 32, 8, "first", None)
    assert len(features) > 1
    covered = set()
    for f in features:
        assert f["length"] == len(f["input_ids"]) <= 32
        ws, we = f["words"]
        assert f["labels"] == tags[ws:we]
        assert subwords(tokenizer, f, f["word_positions"]) == [tokenizer.tokenize(w)[0] for w in words[ws:we]]
        covered.update(range(ws, we))
    assert covered == set(range(len(words)))
    for a, b in itertools.pairwise(features):
        assert a["words"][0] < b["words"][0] <= a["words"][1]  # progress, and no gap between windows
    # Each window's own tags merged back give the sentence's tags.
    merged = merge_windows(len(words), [(f["words"], f["context"], f["labels"]) for f in features])
    assert merged == tags


def test_merge_takes_each_word_from_the_window_where_it_has_most_context():
    # Words 0-5 in window A (cut after word 5), words 3-9 in window B (cut before word 3); a tie goes to A.
    a = ((0, 6), [99, 99, 99, 2, 1, 0], ["a"] * 6)
    b = ((3, 10), [0, 1, 2, 99, 99, 99, 99], ["b"] * 7)
    assert merge_windows(10, [a, b]) == ["a"] * 5 + ["b"] * 5


def test_plan_windows_respects_room_and_stride():
    rng = random.Random(1)
    for _ in range(500):
        counts = [rng.randint(1, 6) for _ in range(rng.randint(1, 60))]
        first = [sum(counts[:i]) for i in range(len(counts))]
        total = sum(counts)
        room, stride = rng.randint(6, 30), rng.randint(0, 10)
        bounds = [*first, total]
        windows = plan_windows(first, total, room, stride)
        assert windows[0][0] == 0 and windows[-1][1] == len(counts)
        for ws, we in windows:
            assert we == ws + 1 or bounds[we] - bounds[ws] <= room
        for (s1, e1), (s2, _) in itertools.pairwise(windows):
            assert s1 < s2 <= e1
            assert s2 == s1 + 1 or bounds[e1] - bounds[s2] <= stride


def test_a_word_longer_than_the_window_keeps_its_first_subword(tokenizer):
    [tok] = tokenize_sentences(tokenizer, [["the", "x" * 40, "movie"]])
    features = window_features(tok, [0, 1, 0], 12, 4, "first", None)
    long_word = [f for f in features if f["words"][0] <= 1 < f["words"][1]]
    assert long_word and all(f["length"] <= 12 for f in features)
    assert merge_windows(3, [(f["words"], f["context"], f["labels"]) for f in features]) == [0, 1, 0]
