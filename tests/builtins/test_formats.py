"""Data formats: what comes out of each, and the message a user gets for each kind of bad file."""

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
