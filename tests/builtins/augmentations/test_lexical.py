"""The lexical augmentations as a user relies on them: a replaced or inserted word really is a synonym in the source,
parts of speech and stop words honoured, case and punctuation kept, seeded, and on tagging rows (the tokens shape)
the tags stay aligned, checked against brute force."""

import functools
import os
import random
import subprocess
import sys

import pytest
from pydantic import ValidationError

from engine_builtins.augmentations import lexical, synonyms
from engine_builtins.augmentations.lexical import SynonymOptions, WordOptions
from engine_builtins.tagging.schemes import entities

SENTENCES = [
    "the movie is a good and funny film , and the actors are brilliant",
    "a dull , tedious picture that never finds its story",
    "Great performances make this quiet drama worth seeing",
    "it 's a smart , sharp comedy with a big heart",
    "THE PLOT IS SILLY BUT THE CAST IS CHARMING",
    "an ugly , boring mess of a film .",
    "what a wonderful , moving experience",
    "the director keeps the story simple and the pace quick",
]
ROWS = [{"text": s, "label": i % 2, "_line": i} for i, s in enumerate(SENTENCES)]
STRIP = ",.;:!?'\"()"


@functools.cache
def table():
    """The bundled table read straight from its file, apart from the code under test: (part of speech, words)."""
    import lzma

    lines = lzma.decompress(synonyms.BUNDLED.read_bytes()).decode("utf-8").splitlines()
    return [(pos, tuple(members)) for pos, *members in (line.split("\t") for line in lines)]


@functools.cache
def synonyms_in_table(word, pos=None):
    """Brute force over the bundled file: the lower-cased synonyms of ``word`` (lower-case words: only groups that
    write them so), of the parts of speech in ``pos``."""
    lower = word.lower()
    found = set()
    for group_pos, members in table():
        if pos is not None and group_pos not in pos:
            continue
        if any(m.lower() == lower for m in members) and (word != lower or word in members):
            found.update(m.lower() for m in members if m.lower() != lower)
    return found


def run(factory, options, rows, seed=0):
    return factory(options)(rows, random.Random(seed))


# --- synonym replacement --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_each_replaced_word_is_a_synonym_from_the_bundled_wordnet(seed):
    out = run(lexical.synonym_replacement, SynonymOptions(p=0.3, phrases=False), ROWS, seed)
    changed = 0
    for before, after in zip(ROWS, out):
        old, new = before["text"].split(), after["text"].split()
        assert len(old) == len(new) and after["label"] == before["label"]
        replaced = [(a, b) for a, b in zip(old, new) if a != b]
        assert len(replaced) <= max(1, round(0.3 * len(old)))
        for a, b in replaced:
            assert a.lower() not in synonyms.ENGLISH_STOP_WORDS and b.lower() not in synonyms.ENGLISH_STOP_WORDS
            assert b.lower() in synonyms_in_table(a), (a, b)
        changed += bool(replaced)
    assert changed >= len(ROWS) - 1


def test_a_row_gets_as_many_replacements_as_p_asks_where_words_have_synonyms():
    row = {"text": "movie film picture car automobile dog", "label": 0}
    for seed in range(10):
        (out,) = run(lexical.synonym_replacement, SynonymOptions(p=0.5, phrases=False), [row], seed)
        assert sum(a != b for a, b in zip(row["text"].split(), out["text"].split())) == 3
    (out,) = run(lexical.synonym_replacement, SynonymOptions(p=1.0, phrases=False), [row], 0)
    assert all(a != b for a, b in zip(row["text"].split(), out["text"].split()))


def test_parts_of_speech_are_honoured():
    for seed in range(5):
        out = run(lexical.synonym_replacement, SynonymOptions(p=0.5, pos=["adj"], phrases=False), ROWS, seed)
        for before, after in zip(ROWS, out):
            for a, b in zip(before["text"].split(), after["text"].split()):
                if a != b:
                    assert b.lower() in synonyms_in_table(a, ("adj",)), (a, b)


def test_parts_of_speech_from_a_thesaurus(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("noun: film, movie\nverb: film, shoot\n", encoding="utf-8")
    rows = [{"text": "film", "label": 0}] * 20
    nouns = run(lexical.synonym_replacement, SynonymOptions(source="thesaurus", path=str(path), pos=["noun"]), rows)
    verbs = run(lexical.synonym_replacement, SynonymOptions(source="thesaurus", path=str(path), pos=["verb"]), rows)
    both = run(lexical.synonym_replacement, SynonymOptions(source="thesaurus", path=str(path)), rows)
    assert {r["text"] for r in nouns} == {"movie"}
    assert {r["text"] for r in verbs} == {"shoot"}
    assert {r["text"] for r in both} == {"movie", "shoot"}


def test_stop_words_are_left_alone_unless_told_otherwise(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("the, this\nis, be\nmovie, film\ngood, fine\n", encoding="utf-8")
    rows = [{"text": "the movie is good", "label": 0}] * 30
    options = {"source": "thesaurus", "path": str(path), "p": 1.0}
    out = run(lexical.synonym_replacement, SynonymOptions(**options), rows)
    assert {r["text"] for r in out} == {"the film is fine"}
    out = run(lexical.synonym_replacement, SynonymOptions(**options, stop_words=[]), rows)
    assert {r["text"] for r in out} == {"this film be fine"}
    out = run(lexical.synonym_replacement, SynonymOptions(**options, stop_words=["Movie"]), rows)
    assert {r["text"] for r in out} == {"this movie be fine"}


def test_no_stop_word_is_put_in_or_inserted_as_a_synonym():
    """WordNet lists "in" for "inch", "too" for "also", "only" for "one": such a synonym is never used (a phrase
    such as "as well" may hold one)."""
    assert {"in", "too"} <= set(synonyms.bundled().synonyms("inch")) | set(synonyms.bundled().synonyms("also"))
    rows = [{"text": "one inch also thence", "label": 0}]
    for seed in range(40):
        (replaced,) = run(lexical.synonym_replacement, SynonymOptions(p=1.0, phrases=False), rows, seed)
        (inserted,) = run(lexical.random_insertion, SynonymOptions(p=1.0, phrases=False), rows, seed)
        new_words = replaced["text"].split() + subsequence_rest(rows[0]["text"].split(), inserted["text"].split())
        assert not {w.lower() for w in new_words if w not in rows[0]["text"].split()} & synonyms.ENGLISH_STOP_WORDS
    # A stop word is still a synonym where the stop words are turned off.
    seen = {run(lexical.synonym_replacement, SynonymOptions(p=1.0, stop_words=[], phrases=False),
                [{"text": "inch", "label": 0}], seed)[0]["text"] for seed in range(40)}
    assert "in" in seen


def test_case_and_punctuation_are_kept(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("good, fine\nmovie, film\n", encoding="utf-8")
    rows = [{"text": "Good movie, GOOD MOVIE. (good)", "label": 0}]
    (out,) = run(lexical.synonym_replacement, SynonymOptions(source="thesaurus", path=str(path), p=1.0), rows)
    assert out["text"] == "Fine film, FINE FILM. (fine)"


def test_multi_word_synonyms_only_where_allowed(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("verb: buy, pick up\n", encoding="utf-8")
    rows = [{"text": "we buy it", "label": 0}]
    options = {"source": "thesaurus", "path": str(path), "stop_words": []}
    (out,) = run(lexical.synonym_replacement, SynonymOptions(**options), rows)
    assert out["text"] == "we pick up it"
    assert run(lexical.synonym_replacement, SynonymOptions(**options, phrases=False), rows)[0] is rows[0]


def test_words_without_synonyms_are_skipped_for_others_and_a_row_without_any_passes_through():
    rows = [{"text": "zzyzx qwxv the movie", "label": 0}, {"text": "zzyzx qwxv , the of", "label": 1}]
    out = run(lexical.synonym_replacement, SynonymOptions(p=0.25), rows)
    assert out[0]["text"].split()[:3] == ["zzyzx", "qwxv", "the"] and out[0]["text"] != rows[0]["text"]
    assert out[1] is rows[1]
    kept = run(lexical.synonym_replacement, SynonymOptions(p=0.25, keep_original=True), rows)
    assert kept[:2] == rows and kept[0] is rows[0] and len(kept) == 3  # the unchanged row is not added again


def test_pair_rows_have_both_texts_rewritten(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("movie, film\ngood, fine\n", encoding="utf-8")
    rows = [{"text": "a good movie", "text_pair": "a movie", "label": "entailment"}]
    (out,) = run(lexical.synonym_replacement, SynonymOptions(source="thesaurus", path=str(path), p=1.0), rows)
    assert out == {"text": "a fine film", "text_pair": "a film", "label": "entailment"}
    assert rows[0]["text"] == "a good movie"  # the input row is not changed


# --- random insertion -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_each_inserted_word_is_a_synonym_of_a_word_of_the_row(seed):
    out = run(lexical.random_insertion, SynonymOptions(p=0.2, phrases=False), ROWS, seed)
    for before, after in zip(ROWS, out):
        old, new = before["text"].split(), after["text"].split()
        inserted = subsequence_rest(old, new)
        assert inserted is not None, (old, new)  # the original words, in order, with words added
        assert len(inserted) == max(1, round(0.2 * len(old)))
        candidates = set().union(*(synonyms_in_table(w.strip(STRIP) or w) for w in old
                                   if w.lower() not in synonyms.ENGLISH_STOP_WORDS))
        assert all(w.lower() in candidates and w.lower() not in synonyms.ENGLISH_STOP_WORDS for w in inserted), inserted


def subsequence_rest(old, new):
    """The words of ``new`` left over when ``old`` is matched in it in order (None when it cannot be)."""
    rest, i = [], 0
    for word in new:
        if i < len(old) and word == old[i]:
            i += 1
        else:
            rest.append(word)
    return rest if i == len(old) else None


def test_a_swap_always_moves_two_different_words():
    """EDA's swap: two different places. Drawn independently, a two-word row would come back as it was half the
    time."""
    rows = [{"text": "good film", "label": 0}] * 200
    out = run(lexical.random_swap, WordOptions(p=0.1), rows)
    assert {r["text"] for r in out} == {"film good"}
    three = [{"text": "a b c", "label": 0}] * 300
    out = run(lexical.random_swap, WordOptions(p=0.1), three)  # one swap: one of the three pairs, never none
    assert {r["text"] for r in out} == {"b a c", "c b a", "a c b"}


def test_insertion_leaves_rows_without_synonyms_alone():
    rows = [{"text": "zzyzx the of", "label": 0}]
    assert run(lexical.random_insertion, SynonymOptions(), rows)[0] is rows[0]


# --- every augmentation: seeds, options, registration -----------------------------------------------------------

ALL = [(lexical.random_swap, WordOptions), (lexical.random_deletion, WordOptions),
       (lexical.synonym_replacement, SynonymOptions), (lexical.random_insertion, SynonymOptions)]


@pytest.mark.parametrize(("factory", "options"), ALL)
def test_a_seed_gives_the_same_rows_and_the_input_is_not_changed(factory, options):
    rows = ROWS + tagged_rows(random.Random(0), 20)
    before = [dict(r, text=list(r["text"]) if isinstance(r["text"], list) else r["text"]) for r in rows]
    first = run(factory, options(p=0.3), rows, 1)
    assert first == run(factory, options(p=0.3), rows, 1)
    assert first != run(factory, options(p=0.3), rows, 2)
    assert rows == before


SEEDED = """
import random
from engine_builtins.augmentations import lexical
rows = [{"text": s, "label": 0} for s in %r]
for name in ("synonym_replacement", "random_insertion"):
    for source in ("bundled", "thesaurus"):
        options = lexical.SynonymOptions(p=0.4, source=source, path=%r if source == "thesaurus" else None)
        print([r["text"] for r in getattr(lexical, name)(options)(rows, random.Random(7))])
"""


def test_the_rows_do_not_depend_on_pythons_hash_seed(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("good, fine, nice, great, decent\nmovie, film, picture, flick\n", encoding="utf-8")
    script = SEEDED % (SENTENCES, str(path))
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120).stdout
               for seed in ("1", "2", "3")}
    assert len(outputs) == 1


def test_prob_is_the_share_of_rows_augmented():
    rows = [{"text": "the movie was good and the film was funny", "label": 0} for _ in range(400)]
    out = run(lexical.synonym_replacement, SynonymOptions(prob=0.25), rows)
    changed = sum(a is not b for a, b in zip(rows, out))
    assert 60 < changed < 140


def test_options_are_checked():
    with pytest.raises(ValidationError, match="source 'thesaurus' reads a file"):
        SynonymOptions(source="thesaurus")
    with pytest.raises(ValidationError, match="'path' is read by source 'wordnet'"):
        SynonymOptions(path="x.txt")
    with pytest.raises(ValidationError, match="'lexicon' is read by source 'wn'"):
        SynonymOptions(source="nltk", lexicon="oewn:2024")
    with pytest.raises(ValidationError):
        SynonymOptions(pos=[])
    with pytest.raises(ValidationError):
        SynonymOptions(pos=["noun", "adjective"])
    with pytest.raises(ValidationError):
        SynonymOptions(sorce="bundled")
    assert SynonymOptions().model_dump() == {
        "p": 0.1, "prob": 1.0, "keep_original": False, "source": "bundled", "path": None, "lexicon": None,
        "pos": None, "stop_words": "english", "phrases": True}


def test_the_fingerprint_follows_the_sources_content(tmp_path):
    assert lexical.synonym_replacement(SynonymOptions()).fingerprint.startswith("bundled:")
    path = tmp_path / "t.txt"
    path.write_text("good, fine\n", encoding="utf-8")
    first = lexical.random_insertion(SynonymOptions(source="thesaurus", path=str(path))).fingerprint
    path.write_text("good, nice\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert lexical.random_insertion(SynonymOptions(source="thesaurus", path=str(path))).fingerprint != first


def test_the_four_are_declared_for_every_shape():
    declared = {}

    def register(name, factory, **kwargs):
        declared[name] = kwargs

    lexical.declare(register)
    assert declared == {name: {"options": options, "shapes": ["single", "pair", "tokens"]}
                        for name, options in [("random_swap", WordOptions), ("random_deletion", WordOptions),
                                              ("synonym_replacement", SynonymOptions),
                                              ("random_insertion", SynonymOptions)]}


@pytest.mark.parametrize("name", ["random_swap", "random_deletion", "synonym_replacement", "random_insertion"])
def test_tagging_accepts_them_end_to_end(name, plugin_manager, tmp_path):
    from engine.config import resolve

    registry = plugin_manager.registry()
    assert registry.get("augment", name).text_shapes == ("single", "pair", "tokens")
    raw = {"task": "tagging", "data": {"train": "t.conll"}, "augment": [{"name": name, "p": 0.3}]}
    resolved = resolve(raw, registry, source=tmp_path / "task.json")
    assert [a.name for a in resolved.augment] == [name]


# --- the tokens shape (tagging) ---------------------------------------------------------------------------------

THESAURUS = "movie, film, picture\ngood, fine, decent\ncall, bid, appeal\nlamb, sheep\nquick, fast, speedy\n" \
            "run, race, sprint\nbig, large, huge\n"
O_WORDS = ["the", "movie", "good", "call", "to", "lamb", "quick", "run", "big", "zzyzx", ",", "."]
ENTITY_WORDS = ["EU", "Paris", "John", "Smith", "German", "British", "Reuters", "movie", "good"]


def tagged_rows(rng, n, scheme="bio"):
    """Random sentences with entities in ``scheme`` (well-formed), O words with and without synonyms."""
    rows = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.3:
                kind, length = rng.choice(["PER", "LOC", "ORG"]), rng.randint(1, 3)
                if scheme == "iob1":
                    first = "B" if tags and tags[-1].endswith(kind) else "I"
                    prefixes = [first] + ["I"] * (length - 1)
                elif scheme == "bioes":
                    prefixes = ["S"] if length == 1 else ["B"] + ["I"] * (length - 2) + ["E"]
                else:
                    prefixes = ["B"] + ["I"] * (length - 1)
                words += [rng.choice(ENTITY_WORDS) for _ in range(length)]
                tags += [f"{p}-{kind}" for p in prefixes]
            else:
                words.append(rng.choice(O_WORDS))
                tags.append("O")
        rows.append({"text": words, "label": tags})
    return rows


def mentions(words, tags):
    return [(e.type, words[e.start:e.end]) for e in entities(tags)]


def bio_valid(tags):
    return all(not t.startswith("I-") or (k > 0 and tags[k - 1] != "O" and tags[k - 1][2:] == t[2:])
               for k, t in enumerate(tags))


def aligned(old, new, may_drop, may_add):
    """Brute force: whether ``new`` (word, tag) pairs are ``old``'s with some positions dropped (each allowed by
    ``may_drop(k)``) and some added (each allowed by ``may_add(pair)``), every other position kept in order:
    the dynamic program over all alignments."""

    @functools.cache
    def fits(i, j):
        if i == len(old) and j == len(new):
            return True
        if i < len(old) and j < len(new) and old[i] == new[j] and fits(i + 1, j + 1):
            return True
        if i < len(old) and may_drop(i) and fits(i + 1, j):
            return True
        return j < len(new) and may_add(new[j]) and fits(i, j + 1)

    return fits(0, 0)


@pytest.fixture
def thesaurus(tmp_path):
    path = tmp_path / "thesaurus.txt"
    path.write_text(THESAURUS, encoding="utf-8")
    return str(path)


def synonym_of(thesaurus_text, a, b):
    return any(a in group and b in group and a != b
               for group in ([w.strip() for w in line.split(",")] for line in thesaurus_text.splitlines()))


@pytest.mark.parametrize("scheme", ["bio", "iob1", "bioes"])
@pytest.mark.parametrize("name", ["random_swap", "random_deletion", "synonym_replacement", "random_insertion"])
def test_tokens_rows_keep_their_tags_aligned(name, scheme, thesaurus):
    rng = random.Random(f"{name}{scheme}")
    rows = tagged_rows(rng, 300, scheme)
    factory = getattr(lexical, name)
    options = WordOptions(p=0.4) if name in ("random_swap", "random_deletion") else \
        SynonymOptions(p=0.4, source="thesaurus", path=thesaurus)
    out = factory(options)(rows, random.Random(0))
    assert len(out) == len(rows)
    changed = 0
    for before, after in zip(rows, out):
        words, tags, new_words, new_tags = before["text"], before["label"], after["text"], after["label"]
        assert len(new_words) == len(new_tags) >= 1
        assert mentions(new_words, new_tags) == mentions(words, tags)  # every entity, in order, word for word
        assert bio_valid(new_tags) or scheme != "bio"
        changed += after is not before
        old, new = list(zip(words, tags)), list(zip(new_words, new_tags))
        if name == "random_swap":
            assert new_tags == tags
            assert all(a == b for a, b, t in zip(words, new_words, tags) if t != "O")
            assert sorted(w for w, t in old if t == "O") == sorted(w for w, t in new if t == "O")
        elif name == "random_deletion":
            free = lexical.deletable(tags)
            assert all(not free[k] or tags[k] == "O" for k in range(len(tags)))
            assert aligned(old, new, lambda k, free=free: free[k], lambda pair: False)
        elif name == "synonym_replacement":
            assert new_tags == tags
            for a, b, t in zip(words, new_words, tags):
                assert a == b or (t == "O" and a not in synonyms.ENGLISH_STOP_WORDS and synonym_of(THESAURUS, a, b))
        else:
            o_words = [w for w, t in old if t == "O"]
            assert aligned(old, new, lambda k: False,
                           lambda pair, o_words=o_words: pair[1] == "O" and any(synonym_of(THESAURUS, w, pair[0])
                                                                                for w in o_words))
    assert changed > 100


def test_deletion_and_insertion_never_split_or_join_entities():
    rows = [{"text": ["John", "and", "Mary", "film"], "label": ["I-PER", "O", "I-PER", "O"]},  # IOB1: two people
            {"text": ["New", "York", "film"], "label": ["B-LOC", "I-LOC", "O"]}]
    assert lexical.deletable(rows[0]["label"]) == [False, False, False, True]
    assert lexical.insertable(rows[1]["label"]) == [0, 2, 3]
    assert lexical.insertable(["B-PER", "I-PER", "E-PER", "S-LOC", "O"]) == [0, 3, 4, 5]
    for seed in range(30):
        out = run(lexical.random_deletion, WordOptions(p=1.0), rows, seed)
        assert out[0]["text"] == ["John", "and", "Mary"]
        assert out[1]["text"] == ["New", "York"]


def test_tokens_rows_take_single_words_from_wordnet():
    rows = [{"text": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
             "label": ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]}]
    for seed in range(20):
        (out,) = run(lexical.synonym_replacement, SynonymOptions(p=0.5), rows, seed)
        assert len(out["text"]) == len(out["label"]) == 9 and out["label"] == rows[0]["label"]
        for a, b, t in zip(rows[0]["text"], out["text"], out["label"]):
            assert a == b or (t == "O" and " " not in b and b.lower() in synonyms_in_table(a))
        (out,) = run(lexical.random_insertion, SynonymOptions(p=0.5), rows, seed)
        assert mentions(out["text"], out["label"]) == mentions(rows[0]["text"], rows[0]["label"])
        assert all(" " not in w for w in out["text"])


def test_tokens_rows_written_as_strings_stay_strings():
    rows = [{"text": "EU rejects German call", "label": "B-ORG O B-MISC O"}]
    (out,) = run(lexical.random_insertion, SynonymOptions(p=0.5), rows, 0)
    assert isinstance(out["text"], str) and isinstance(out["label"], str)
    assert len(out["text"].split()) == len(out["label"].split()) == 5
    assert mentions(out["text"].split(), out["label"].split()) == [("ORG", ["EU"]), ("MISC", ["German"])]


def test_rows_whose_tags_do_not_align_are_left_alone():
    rows = [{"text": ["a", "good", "movie"], "label": ["O", "O"]}, {"text": ["a", "good", "movie"]}]
    for factory, options in ALL:
        out = run(factory, options(p=1.0), rows)
        assert out[0] is rows[0] and out[1] is rows[1]


def test_the_old_token_list_rows_of_0_2_are_now_augmented_around_their_entities():
    """0.2 left token lists alone; now only their O words move."""
    tagged = [{"text": ["John", "lives", "in", "Paris", "now"], "label": ["B-PER", "O", "O", "B-LOC", "O"]}]
    out = run(lexical.random_swap, WordOptions(p=1.0), tagged, 3)
    assert out[0]["label"] == tagged[0]["label"]
    assert out[0]["text"][0] == "John" and out[0]["text"][3] == "Paris"
    assert sorted(out[0]["text"]) == sorted(tagged[0]["text"])
