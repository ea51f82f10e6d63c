"""Synonym sources: the bundled WordNet table (offline, fast, what it says it holds), a WordNet database folder, a
thesaurus file (and its errors, by file and line), NLTK's WordNet and the wn package (where installed)."""

import json
import lzma
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import ConfigError, DataError
from engine_builtins.augmentations import synonyms

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "wordnet_dict"  # a tiny WordNet database written by hand in wndb(5)'s format (not WordNet's data)


def bundled_table() -> list[tuple[str, list[str]]]:
    """The bundled table read straight from its file, apart from the code under test."""
    lines = lzma.decompress(synonyms.BUNDLED.read_bytes()).decode("utf-8").splitlines()
    return [(pos, members) for pos, *members in (line.split("\t") for line in lines)]


def expected_synonyms(table, word, pos=None):
    """A word's synonyms by brute force over the table: the other members of each group holding the word (in lower
    case, a lower-case word only in groups that write it so), of the parts of speech in ``pos``."""
    lower = word.lower()
    found = set()
    for group_pos, members in table:
        if pos is not None and group_pos is not None and group_pos not in pos:
            continue
        matches = [m for m in members if m.lower() == lower]
        if not matches or (word == lower and word not in members):
            continue
        found.update(m for m in members if m.lower() != lower)
    return found


# --- the bundled source ---------------------------------------------------------------------------------------


def test_the_bundled_table_is_wordnet_with_its_license_beside_it():
    table = bundled_table()
    assert len(table) > 50_000
    assert {pos for pos, _ in table} == {"noun", "verb", "adj", "adv"}
    assert all(len({m.lower() for m in members}) == len(members) >= 2 for _, members in table)
    assert ("noun", ["movie", "film", "picture", "moving picture", "moving-picture show", "motion picture",
                     "motion-picture show", "picture show", "pic", "flick"]) in table
    assert synonyms.BUNDLED.stat().st_size < 2_000_000
    license_text = (synonyms.DATA / "LICENSE-WordNet").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in license_text


@pytest.mark.parametrize("word", ["movie", "film", "good", "funny", "quickly", "bush", "Bush", "run", "May", "may",
                                  "dull", "brilliant", "Paris"])
def test_a_bundled_words_synonyms_are_the_tables_own(word):
    table = bundled_table()
    source = synonyms.bundled()
    assert set(source.synonyms(word)) == expected_synonyms(table, word)
    for pos in (["noun"], ["verb"], ["adj", "adv"]):
        assert set(source.synonyms(word, frozenset(pos))) == expected_synonyms(table, word, pos)
    assert all(" " not in s for s in source.synonyms(word, single=True))


def test_words_without_synonyms_are_not_remembered():
    """A large corpus has millions of words no source knows (names, numbers, typos): the cache of looked-up synonyms
    holds only the source's words, so it cannot outgrow the source."""
    table = synonyms.Table([(None, ["movie", "film"], None)], "test", "test")
    for i in range(10_000):
        assert table.synonyms(f"zz{i}") == ()
    assert table.synonyms("movie") == ("film",) and table.synonyms("Movie") == ("film",)
    assert len(table._cache) == 2


def test_lower_case_words_do_not_take_the_synonyms_of_names():
    source = synonyms.bundled()
    assert "shrub" in source.synonyms("bush") and "George Bush" not in source.synonyms("bush")
    assert "George Bush" in source.synonyms("Bush")
    assert source.synonyms("dogs") == ()  # matched as written: no lemmatizer
    assert source.synonyms("qwertyuiop") == ()


def test_the_bundled_source_loads_offline_fast_and_without_nltk(tmp_path):
    """In a fresh process with no network (every socket refused), HF_HUB_OFFLINE=1, and nltk and wn unimportable."""
    script = textwrap.dedent("""
        import socket, sys, time
        def refused(*args, **kwargs):
            raise OSError("no network in this test")
        socket.socket = refused
        socket.create_connection = refused
        sys.modules["nltk"] = None
        sys.modules["wn"] = None
        import random
        from engine_builtins.augmentations import lexical, synonyms
        started = time.process_time()
        table = synonyms.bundled()
        took = time.process_time() - started
        assert "film" in table.synonyms("movie"), table.synonyms("movie")
        apply = lexical.synonym_replacement(lexical.SynonymOptions(p=0.5))
        rows = apply([{"text": "a good movie", "label": 1}], random.Random(0))
        print(f"{took:.3f}", rows[0]["text"], apply.fingerprint)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NLTK_DATA": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    took, *words, fingerprint = result.stdout.split()
    assert float(took) < 1.0  # CPU seconds: about 0.15 on the 2-core machine
    assert words != ["a", "good", "movie"] and len(words) >= 3
    assert fingerprint.startswith("bundled:")


def test_the_bundled_table_is_package_data():
    pyproject = (HERE.parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert "augmentations/data/wordnet-3.0-synonyms.tsv.xz" in pyproject
    assert "augmentations/data/LICENSE-WordNet" in pyproject


# --- a WordNet database folder --------------------------------------------------------------------------------


def test_a_wordnet_folder_is_read_synset_by_synset():
    assert list(synonyms.wordnet_groups(FIXTURE)) == [
        ("noun", ("car", "auto", "automobile", "machine", "motorcar")),
        ("noun", ("movie", "film", "picture", "moving picture")),
        ("noun", ("picture", "image", "icon")),
        ("noun", ("bush", "shrub")),
        ("noun", ("Bush", "George Bush", "President Bush")),
        ("noun", ("dog", "domestic dog", "Canis familiaris")),
        # "solo", a synset of one word, gives no synonyms
        ("verb", ("film", "shoot", "take")),
        ("verb", ("run", "go", "pass")),
        ("verb", ("buy", "purchase")),
        # "good" alone (a head adjective of one word) gives none either; satellites are adjectives
        ("adj", ("good", "right", "ripe")),
        ("adj", ("quick", "speedy")),  # the syntactic marker of "quick(p)" dropped
        ("adj", ("humorous", "humourous")),
        ("adj", ("funny", "amusing", "comic")),
        ("adv", ("quickly", "rapidly", "speedily")),
        ("adv", ("well", "good")),
    ]


def test_a_wordnet_folder_as_a_source():
    source = synonyms.load("wordnet", str(FIXTURE))
    assert source.synonyms("film") == ("movie", "picture", "moving picture", "shoot", "take")
    assert source.synonyms("film", frozenset({"verb"})) == ("shoot", "take")
    assert source.synonyms("film", frozenset({"noun"}), single=True) == ("movie", "picture")
    assert source.synonyms("good") == ("right", "ripe", "well")
    assert source.synonyms("good", frozenset({"adv"})) == ("well",)
    assert source.synonyms("bush") == ("shrub",)
    assert source.synonyms("Bush") == ("shrub", "George Bush", "President Bush")
    assert source.synonyms("solo") == ()
    assert source.fingerprint.startswith("wordnet-folder:")
    assert synonyms.load("wordnet", str(FIXTURE)) is source  # read once per process


def test_a_bad_wordnet_folder_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        synonyms.wordnet_folder(tmp_path / "missing")
    (tmp_path / "README").write_text("hello")
    with pytest.raises(ConfigError, match=r"none of WordNet's data files \(data.noun.*it holds: README"):
        synonyms.wordnet_folder(tmp_path)
    lines = (FIXTURE / "data.verb").read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(" 03 ", " 0z ", 1)
    (tmp_path / "data.verb").write_text("".join(lines))
    with pytest.raises(DataError) as info:
        synonyms.wordnet_folder(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'data.verb'}, line 5: not a WordNet synset line: the word count "
                                      "is '0z', expected a two-digit hexadecimal number")


# --- a thesaurus file -----------------------------------------------------------------------------------------


def write(tmp_path, text, name="thesaurus.txt"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_a_thesaurus_file(tmp_path):
    path = write(tmp_path, """
        # my thesaurus
        happy, glad, cheerful

        adj: quick,  fast, speedy
        verb:\tbuy\tpurchase\tpick up
        noun: film, movie,
    """)
    source = synonyms.load("thesaurus", str(path))
    assert source.synonyms("happy") == ("glad", "cheerful")
    assert source.synonyms("glad") == ("happy", "cheerful")
    assert source.synonyms("Glad") == ("happy", "cheerful")
    assert source.synonyms("buy") == ("purchase", "pick up")
    assert source.synonyms("buy", single=True) == ("purchase",)
    assert source.synonyms("buy", frozenset({"noun"})) == ()
    assert source.synonyms("happy", frozenset({"noun"})) == ("glad", "cheerful")  # no part of speech: always used
    assert source.synonyms("movie") == ("film",)
    assert source.synonyms("fast", frozenset({"adj"})) == ("quick", "speedy")


def test_a_json_thesaurus_is_one_way(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"car": ["auto", "automobile"], "fast": {"adj": ["quick"], "verb": ["abstain"]}}))
    source = synonyms.load("thesaurus", str(path))
    assert source.synonyms("car") == ("auto", "automobile")
    assert source.synonyms("auto") == ()
    assert source.synonyms("fast") == ("quick", "abstain")
    assert source.synonyms("fast", frozenset({"verb"})) == ("abstain",)


def test_an_edited_thesaurus_is_read_again_with_a_new_fingerprint(tmp_path):
    path = write(tmp_path, "happy, glad\n")
    first = synonyms.load("thesaurus", str(path))
    assert first.synonyms("happy") == ("glad",)
    path.write_text("happy, cheerful, merry\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's grain
    second = synonyms.load("thesaurus", str(path))
    assert second.synonyms("happy") == ("cheerful", "merry")
    assert second.fingerprint != first.fingerprint


@pytest.mark.parametrize(("text", "line", "message"), [
    ("happy, glad\nnuon: car, auto\n", 2,
     "the line starts with 'nuon:', expected a part of speech (one of noun:, verb:, adj:, adv:) (did you mean "
     "'noun'?) or none"),
    ("happy, glad\n\n# note\ncar, , auto\n", 4,
     "entry 2 is empty (two commas in a row, or one at the start): expected words separated by commas, e.g. "
     "'happy, glad, cheerful'"),
    ("happy, glad\ncar\n", 2,
     "a group of synonyms needs two words or more, found 1: 'car' (expected e.g. 'happy, glad, cheerful')"),
    ("happy, Happy\n", 1,
     "a group of synonyms needs two words or more, found 2: 'happy, Happy' (expected e.g. 'happy, glad, cheerful')"),
    ("happy\tglad\n\tcar\tauto\n", 2,
     "entry 1 is empty (two tabs in a row, or one at the start): expected words separated by commas, e.g. "
     "'happy, glad, cheerful'"),
])
def test_a_thesaurus_error_names_the_file_the_line_what_was_expected_and_what_came(tmp_path, text, line, message):
    path = tmp_path / "thesaurus.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        synonyms.load("thesaurus", str(path))
    assert str(info.value) == f"{path}, line {line}: {message}"


def test_a_thesaurus_that_is_not_utf8_or_empty_or_missing(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"happy, glad\ncaf\xe9, bistro\n")
    with pytest.raises(DataError, match=r"latin1.txt, line 2: not UTF-8 text: byte 0xe9 at column 4"):
        synonyms.load("thesaurus", str(path))
    empty = write(tmp_path, "# nothing yet\n", "empty.txt")
    with pytest.raises(DataError, match=r"empty.txt: no synonym groups in the file"):
        synonyms.load("thesaurus", str(empty))
    with pytest.raises(DataError, match=r"missing.txt: no such thesaurus file"):
        synonyms.load("thesaurus", str(tmp_path / "missing.txt"))


@pytest.mark.parametrize(("text", "line", "message"), [
    ('{\n  "car": ["auto"],\n  "fast": ["quick",]\n}\n', 3, "not valid JSON: Expecting value (column 20)"),
    ('{\n  "car": ["auto"],\n  "fast": "quick"\n}\n', 3,
     "'fast': expected a list of synonyms (non-empty strings) such as [\"auto\", \"automobile\"], found \"quick\""),
    ('{\n  "car": ["auto"],\n  "fast": {"adjective": ["quick"]}\n}\n', 3,
     "'fast': 'adjective' is not a part of speech, expected one of noun, verb, adj, adv"),
    ('["car", "auto"]\n', 1,
     "expected a JSON object from each word to its synonyms, e.g. {\"car\": [\"auto\"]}; the file holds a list"),
    ('{\n  "sports car": ["roadster"]\n}\n', 2, "the key 'sports car' is not a word: expected a single word"),
])
def test_a_json_thesaurus_error_names_the_line(tmp_path, text, line, message):
    path = tmp_path / "t.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        synonyms.load("thesaurus", str(path))
    assert str(info.value) == f"{path}, line {line}: {message}"


# --- NLTK's WordNet, the wn package, and none at all ------------------------------------------------------------


def run_python(script, env):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_nltks_wordnet_reads_the_fixture(tmp_path):
    pytest.importorskip("nltk")
    import shutil

    shutil.copytree(FIXTURE, tmp_path / "corpora" / "wordnet")
    out = run_python("""
        from engine_builtins.augmentations import synonyms
        source = synonyms.load("wordnet")
        print(source.description)
        print(source.synonyms("film"))
        print(source.synonyms("film", frozenset({"verb"})))
        print(source.synonyms("bush"), source.synonyms("Bush"))
        print(source.synonyms("films"))  # NLTK's morphy finds "film"
    """, {"NLTK_DATA": str(tmp_path)})
    assert out == ["NLTK WordNet 3.0", "('movie', 'picture', 'moving picture', 'shoot', 'take')", "('shoot', 'take')",
                   "('shrub',) ('shrub', 'George Bush', 'President Bush')",
                   "('movie', 'film', 'picture', 'moving picture', 'shoot', 'take')"]


LMF = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE LexicalResource SYSTEM "http://globalwordnet.github.io/schemas/WN-LMF-1.0.dtd">
<LexicalResource xmlns:dc="https://globalwordnet.github.io/schemas/dc/">
  <Lexicon id="mini" label="Mini" language="en" email="x@example.org" license="CC-BY-4.0" version="1.0">
    {entries}
    <Synset id="mini-1-n" ili="" partOfSpeech="n"/>
    <Synset id="mini-2-n" ili="" partOfSpeech="n"/>
    <Synset id="mini-3-v" ili="" partOfSpeech="v"/>
  </Lexicon>
</LexicalResource>
"""


def test_the_wn_packages_lexicon(tmp_path):
    pytest.importorskip("wn")
    entries = "\n".join(
        f'<LexicalEntry id="mini-{word}-{pos}"><Lemma writtenForm="{word}" partOfSpeech="{pos}"/>'
        f'<Sense id="mini-{word}-{pos}-1" synset="{synset}"/></LexicalEntry>'
        for word, pos, synset in [("car", "n", "mini-1-n"), ("auto", "n", "mini-1-n"), ("film", "n", "mini-2-n"),
                                  ("movie", "n", "mini-2-n"), ("film", "v", "mini-3-v"), ("shoot", "v", "mini-3-v")])
    (tmp_path / "mini.xml").write_text(LMF.format(entries=entries), encoding="utf-8")
    out = run_python(f"""
        import sys
        sys.modules["nltk"] = None  # so that source "wordnet" goes to wn
        import wn
        wn.add({str(tmp_path / "mini.xml")!r}, progress_handler=None)
        from engine_builtins.augmentations import synonyms
        source = synonyms.load("wordnet")
        print(source.description, source.fingerprint)
        print(source.synonyms("film"), source.synonyms("film", frozenset({{"verb"}})), source.synonyms("car"))
        try:
            synonyms.load("wn", lexicon="nope:1")
        except Exception as exc:
            print(type(exc).__name__, exc.issues[0])
    """, {"WN_DATA_DIR": str(tmp_path / "wn_data")})
    assert out == ["wn lexicon mini:1.0 wn:mini:1.0", "('movie', 'shoot') ('shoot',) ('auto',)",
                   "ConfigError lexicon: the wn package cannot open lexicon 'nope:1' (no lexicon found with "
                   "lang=None and lexicon='nope:1'); its lexicons: mini:1.0"]


def test_source_wordnet_without_any_wordnet_says_how_to_get_one(tmp_path):
    out = run_python("""
        import sys
        sys.modules["nltk"] = None
        sys.modules["wn"] = None
        from engine.errors import ConfigError
        from engine_builtins.augmentations import synonyms
        for name in ("wordnet", "nltk", "wn"):
            try:
                synonyms.load(name)
            except ConfigError as exc:
                print(exc.issues[0])
    """, {"NLTK_DATA": str(tmp_path)})
    assert out == [
        "source: source 'wordnet' found no WordNet: give a WordNet database folder as 'path' (WordNet's dict/), "
        "install NLTK's (pip install nltk; python -m nltk.downloader wordnet) or the wn package's (pip install wn; "
        "python -m wn download oewn), or use source 'bundled' (source 'wn' needs the wn package: pip install wn, "
        "then python -m wn download oewn (or use source 'bundled'))",
        "source: source 'nltk' needs NLTK: pip install nltk, then python -m nltk.downloader wordnet (or use source "
        "'bundled')",
        "source: source 'wn' needs the wn package: pip install wn, then python -m wn download oewn (or use source "
        "'bundled')",
    ]
