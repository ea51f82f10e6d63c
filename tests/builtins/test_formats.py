"""Data formats: what comes out of each, and the message a user gets for each kind of bad file."""

import bz2
import gzip
import lzma

import pytest

from engine import DataError
from engine_builtins.formats import (
    CsvOptions,
    DatasetsOptions,
    JsonlOptions,
    TableOptions,
    load_csv,
    load_datasets,
    load_jsonl,
    load_tsv,
)
from engine_builtins.tagging.options import ConllOptions
from engine_builtins.tagging.readers import load_conll


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_tsv_keeps_quote_characters_inside_fields(tmp_path):
    write(tmp_path, "t.tsv", 's1\ts2\tscore\nHe said "yes\tShe said "no" twice\t3.5\n"quoted"\tplain\t1\n')
    splits = load_tsv(TableOptions(train="t.tsv", text=["s1", "s2"], label="score"), tmp_path)
    rows = splits["train"].rows
    assert rows[0] == {"_line": 2, "text": 'He said "yes', "text_pair": 'She said "no" twice', "label": "3.5"}
    assert rows[1]["text"] == '"quoted"' and rows[1]["_line"] == 3


def test_tsv_without_header_takes_column_names(tmp_path):
    write(tmp_path, "t.tsv", "good one\t1\nbad one\t0\n")
    rows = load_tsv(TableOptions(train="t.tsv", header=False, columns=["text", "label"]), tmp_path)["train"].rows
    assert [(r["text"], r["label"], r["_line"]) for r in rows] == [("good one", "1", 1), ("bad one", "0", 2)]


def test_csv_handles_quoting_and_embedded_newlines(tmp_path):
    write(tmp_path, "t.csv", 'text,label\n"a, b",x\n"line one\nline two",y\nplain,x\n')
    rows = load_csv(CsvOptions(train="t.csv"), tmp_path)["train"].rows
    assert [r["text"] for r in rows] == ["a, b", "line one\nline two", "plain"]
    assert rows[2]["_line"] == 5


def test_jsonl_reads_objects_and_lists(tmp_path):
    write(tmp_path, "t.jsonl", '{"text": "hi", "label": "a"}\n\n{"text": "yo", "label": ["a", "b"]}\n')
    rows = load_jsonl(JsonlOptions(train="t.jsonl"), tmp_path)["train"].rows
    assert rows[1] == {"_line": 3, "text": "yo", "label": ["a", "b"]}


@pytest.mark.parametrize(
    "content, options, expected",
    [
        ("text\tlabel\nfine\tx\ntoo\tmany\tfields\n", {}, r"t\.tsv, line 3: expected 2 fields"),
        ("sentence\tlabel\nfine\tx\n", {}, r"t\.tsv, line 1: no column 'text'.*columns are: 'sentence', 'label'"),
        ("txt\tlabel\nfine\tx\n", {}, r"no column 'text' \(did you mean 'txt'\?\)"),
        ("text\tlabel\nfine\tx\nno label\t\n", {}, r"t\.tsv, line 3: empty label in column 'label'"),
        ("text\tlabel\n\tx\n", {}, r"line 2: empty text in column 'text'"),
    ],
)
def test_tsv_errors_name_file_line_and_expectation(tmp_path, content, options, expected):
    write(tmp_path, "t.tsv", content)
    with pytest.raises(DataError, match=expected):
        load_tsv(TableOptions(train="t.tsv", **options), tmp_path)


def test_missing_file_names_the_config_path(tmp_path):
    write(tmp_path, "t.tsv", "text\tlabel\na\tb\n")
    with pytest.raises(DataError, match=r"data\.validation: no such file: .*nope\.tsv"):
        load_tsv(TableOptions(train="t.tsv", validation="nope.tsv"), tmp_path)


def test_undecodable_bytes_point_at_the_line_and_the_encoding_option(tmp_path):
    write(tmp_path, "t.tsv", "text\tlabel\nok\tx\ncaf\xe9\tx\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3: cannot decode byte 0xe9 as utf-8; set data.encoding"):
        load_tsv(TableOptions(train="t.tsv"), tmp_path)
    rows = load_tsv(TableOptions(train="t.tsv", encoding="latin-1"), tmp_path)["train"].rows
    assert rows[1]["text"] == "café"


def test_invalid_jsonl_line(tmp_path):
    write(tmp_path, "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label: "x"}\n')
    with pytest.raises(DataError, match=r"t\.jsonl, line 2: invalid JSON"):
        load_jsonl(JsonlOptions(train="t.jsonl"), tmp_path)


def test_malformed_csv(tmp_path):
    write(tmp_path, "t.csv", 'text,label\n"unclosed,x\n')
    with pytest.raises(DataError, match=r"t\.csv.*malformed CSV"):
        load_csv(CsvOptions(train="t.csv"), tmp_path)


def test_labels_may_be_absent_when_predicting(tmp_path):
    write(tmp_path, "t.tsv", "text\nonly text\n")
    rows = load_tsv(TableOptions(train="t.tsv", labels_required=False), tmp_path)["train"].rows
    assert rows == [{"_line": 2, "text": "only text"}]


def test_datasets_folder_with_class_labels(tmp_path):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0]}, features=features),
        "validation": datasets.Dataset.from_dict({"sentence": ["fine"], "label": [1]}, features=features),
    })
    data.save_to_disk(str(tmp_path / "ds"))
    splits = load_datasets(DatasetsOptions(path="ds", text="sentence"), tmp_path)
    assert sorted(splits) == ["train", "validation"]
    assert [(r["text"], r["label"]) for r in splits["train"].rows] == [("good", "pos"), ("bad", "neg")]


# --- compressed files ---------------------------------------------------------------------------------------------


COMPRESSORS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("suffix", COMPRESSORS)
@pytest.mark.parametrize("name, load, options, content", [
    ("t.tsv", load_tsv, TableOptions, "text\tlabel\ngood one\tpos\n\nbad one\tneg\n"),
    ("t.csv", load_csv, CsvOptions, 'text,label\n"good, one",pos\n\nbad one,neg\n'),
    ("t.jsonl", load_jsonl, JsonlOptions, '{"text": "good one", "label": "pos"}\n\n{"text": "bad one", "label": "neg"}\n'),
], ids=["tsv", "csv", "jsonl"])
def test_compressed_files_read_as_the_plain_ones(tmp_path, suffix, name, load, options, content):
    """The issue's case: a .gz file was 'cannot decode byte 0x8b as utf-8; set data.encoding'."""
    write(tmp_path, name, content)
    write(tmp_path, f"{name}.{suffix}", COMPRESSORS[suffix](content.encode("utf-8")))
    plain = load(options(train=name), tmp_path)["train"].rows
    packed = load(options(train=f"{name}.{suffix}"), tmp_path)["train"].rows
    assert packed == plain and len(plain) == 2  # rows, and the lines they name


def test_a_compressed_file_is_known_by_its_bytes_and_errors_keep_their_line(tmp_path):
    write(tmp_path, "t.tsv", gzip.compress(b"text\tlabel\nfine\tx\ntoo\tmany\tfields\n"))  # gzip, named .tsv
    with pytest.raises(DataError, match=r"t\.tsv, line 3: expected 2 fields"):
        load_tsv(TableOptions(train="t.tsv"), tmp_path)
    write(tmp_path, "l.tsv", gzip.compress("text\tlabel\nok\tx\ncaf\xe9\tx\n".encode("latin-1")))
    assert load_tsv(TableOptions(train="l.tsv", encoding="latin-1"), tmp_path)["train"].rows[1]["text"] == "café"
    write(tmp_path, "u.tsv", gzip.compress("text\tlabel\nok\tx\n".encode("utf-16")))
    assert load_tsv(TableOptions(train="u.tsv", encoding="utf-16"), tmp_path)["train"].rows[0]["text"] == "ok"


def test_a_compressed_file_cut_short_is_an_error_at_its_line(tmp_path):
    rows = "".join(f"text {i}\t{i % 2}\n" for i in range(20_000))
    packed = gzip.compress(("text\tlabel\n" + rows).encode("utf-8"))
    write(tmp_path, "t.tsv.gz", packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"t\.tsv\.gz, line \d+: the gzip data is damaged or cut short here"):
        load_tsv(TableOptions(train="t.tsv.gz"), tmp_path)


@pytest.mark.parametrize("kind, content", [("zip", b"PK\x03\x04rest"), ("zstd", b"\x28\xb5\x2f\xfdrest")])
def test_an_archive_engine_does_not_read_says_what_it_is(tmp_path, kind, content):
    write(tmp_path, "t.tsv", content)
    with pytest.raises(DataError, match=rf"t\.tsv: is a {kind} archive, which engine does not read: unpack it"):
        load_tsv(TableOptions(train="t.tsv"), tmp_path)


def test_conll_files_may_be_compressed_too(tmp_path):
    conll = "-DOCSTART- O\n\nJohn B-PER\nlives O\n\nParis B-LOC\n"
    write(tmp_path, "t.conll.gz", gzip.compress(conll.encode("utf-8")))
    rows = load_conll(ConllOptions(train="t.conll.gz"), tmp_path)["train"].rows
    assert rows == [{"_line": 3, "text": ["John", "lives"], "label": ["B-PER", "O"]},
                    {"_line": 6, "text": ["Paris"], "label": ["B-LOC"]}]

