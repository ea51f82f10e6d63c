"""The conll and txt formats: rows out of CoNLL-2003-, WNUT-17- and BTC-shaped files, and errors that name the line."""

import pytest

from engine import DataError
from engine_builtins.tagging import ConllOptions, PlainTextOptions
from engine_builtins.tagging.readers import load_conll, load_plain


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def rows(tmp_path, content, **options):
    write(tmp_path, "t.conll", content)
    return load_conll(ConllOptions(train="t.conll", **options), tmp_path)["train"].rows


def test_conll2003_columns_and_docstart(tmp_path):
    content = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
               "Blackburn NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP B-LOC\n")
    assert rows(tmp_path, content) == [
        {"_line": 3, "text": ["EU", "rejects"], "label": ["B-ORG", "O"]},
        {"_line": 6, "text": ["Peter", "Blackburn"], "label": ["B-PER", "I-PER"]},
        {"_line": 11, "text": ["BRUSSELS"], "label": ["B-LOC"]},
    ]
    # The chunk column instead of the NER one, counted from the start.
    assert rows(tmp_path, content, tag_column=2)[1]["label"] == ["B-NP", "I-NP"]


def test_wnut_tab_only_lines_end_sentences(tmp_path):
    content = "@paul\tO\nlove\tO\n\t\nnew\tB-location\nyork\tI-location\n \n\nthe\tO\n"
    got = rows(tmp_path, content, separator="\t")
    assert [r["text"] for r in got] == [["@paul", "love"], ["new", "york"], ["the"]]
    assert [r["_line"] for r in got] == [1, 4, 8]
    assert got[1]["label"] == ["B-location", "I-location"]


def test_btc_tokens_with_spaces_and_empty_tokens_with_a_tab_separator(tmp_path):
    content = "ke s\tO\n\U0001F633 \tO\n\tO\nLondon\tB-LOC\r\n\nDubbz\ufeff\tB-PER\n"
    got = rows(tmp_path, content, separator="\t")
    assert got[0]["text"] == ["ke s", "\U0001F633", "", "London"]
    assert got[0]["label"] == ["O", "O", "O", "B-LOC"]
    assert got[1]["text"] == ["Dubbz\ufeff"]


def test_a_token_with_a_space_under_the_default_separator_points_at_the_tab_option(tmp_path):
    with pytest.raises(DataError, match=r"t\.conll, line 2: expected 2 fields like line 1, got 3.*separator to \"\\t\""):
        rows(tmp_path, "a\tO\nke s\tO\n")


def test_missing_tag_column_names_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"t\.conll, line 3: expected 2 fields like line 1, got 1: 'rejects'"):
        rows(tmp_path, "EU B-ORG\n\nrejects\n")
    with pytest.raises(DataError, match=r"t\.conll, line 1: missing tag column"):
        rows(tmp_path, "EU\nrejects\n")


def test_token_only_files_are_read_without_tags_for_prediction(tmp_path):
    got = rows(tmp_path, "EU\nrejects\n\nPeter\n", labels_required=False)
    assert got == [{"_line": 1, "text": ["EU", "rejects"]}, {"_line": 4, "text": ["Peter"]}]


def test_latin1_files_need_the_encoding_option(tmp_path):
    content = "Caf\xe9 B-LOC\nopens O\n".encode("latin-1")
    with pytest.raises(DataError, match=r"line 1: cannot decode byte 0xe9 as utf-8; set data.encoding"):
        rows(tmp_path, content)
    assert rows(tmp_path, content, encoding="latin-1")[0]["text"] == ["Café", "opens"]


def test_line_separators_inside_tokens_do_not_split_lines(tmp_path):
    # str.splitlines() would break at U+2028 and \x1c; only \n ends a line in CoNLL.
    got = rows(tmp_path, "a\u2028b\tO\nc\x1cd\tO\n", separator="\t")
    assert got[0]["text"] == ["a\u2028b", "c\x1cd"]


def test_plain_text_one_sentence_per_line(tmp_path):
    write(tmp_path, "in.txt", "John lives in  New York\n\n  \nParis\r\n")
    got = load_plain(PlainTextOptions(train="in.txt", labels_required=False), tmp_path)["train"].rows
    assert got == [{"_line": 1, "text": "John lives in  New York"}, {"_line": 4, "text": "Paris"}]


def test_plain_text_cannot_be_training_data(tmp_path):
    write(tmp_path, "train.txt", "EU B-ORG\n")
    with pytest.raises(DataError, match=r"train\.txt: plain text has no tags.*data\.format to \"conll\""):
        load_plain(PlainTextOptions(train="train.txt"), tmp_path)
