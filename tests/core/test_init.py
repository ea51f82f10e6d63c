"""`engine init DATA_FILE`: a starter task file from the data, which `engine validate` accepts and `engine run`
trains; the task chosen from the labels, the columns from their names and contents, validation data proposed."""

import json
import shutil
from pathlib import Path

import pytest

from engine.testing import labelled_rows, tsv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example, task, data", [
    ("sentiment/train.tsv", "classification", {"text": "sentence", "label": "label"}),
    ("regression/train.tsv", "regression", {"text": ["sentence1", "sentence2"], "label": "score"}),
    ("ner/train.conll", "tagging", {"separator": "\t"}),
])
def test_init_on_each_example_writes_a_task_file_that_validates(example, task, data, tmp_path, run_engine):
    folder = tmp_path / "data"
    shutil.copytree((EXAMPLES / example).parent, folder)
    output = tmp_path / "task.json"
    result = run_engine("init", folder / Path(example).name, "--output", output)
    assert result.exit_code == 0, result.stderr
    config = json.loads(output.read_text())
    assert config["task"] == task
    assert {k: config["data"][k] for k in data} == data
    assert config["data"]["validation"] == f"data/validation{Path(example).suffix}"  # found next to it
    assert f"task '{task}'" in result.stderr
    validated = run_engine("validate", output)
    assert validated.exit_code == 0, validated.stderr


def test_init_without_validation_data_proposes_a_split_and_the_task_trains(tmp_path, run_engine, tiny_model_dir):
    (tmp_path / "reviews.tsv").write_text(tsv(labelled_rows(["bad", "good"], 60, 1)))
    result = run_engine("init", tmp_path / "reviews.tsv", "--output", tmp_path / "task.json")
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "task.json").read_text())
    assert config["data"] == {"format": "tsv", "train": "reviews.tsv", "validation_split": 0.1, "text": "text",
                              "label": "label"}
    assert "data.validation_split holds out a seeded 10%" in " ".join(result.stderr.split())
    assert "labels: bad 30, good 30" in result.stderr
    trained = run_engine("run", tmp_path / "task.json", "--set", f"model.name={tiny_model_dir}",
                         "--set", "training.epochs=1")
    assert trained.exit_code == 0, trained.stderr
    metrics = json.loads((tmp_path / config["output_dir"] / "metrics.json").read_text())
    assert "accuracy" in metrics["validation"]


@pytest.mark.parametrize("labels, task", [([1, 2, 3, 2, 1, 3], "classification"),
                                          ([0.5, 1.25, 3.0, 2.5, 4.0, 0.0], "regression")])
def test_numbers_with_fractions_are_regression_and_few_whole_numbers_classes(labels, task, tmp_path, run_engine):
    rows = [{"text": f"the movie number {i} was fine", "label": label} for i, label in enumerate(labels)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_engine("init", tmp_path / "d.jsonl", "-o", tmp_path / "t.json").exit_code == 0
    assert json.loads((tmp_path / "t.json").read_text())["task"] == task


def test_init_keeps_an_existing_task_file_and_names_unknown_formats(tmp_path, run_engine):
    (tmp_path / "task.json").write_text("{}")
    (tmp_path / "d.tsv").write_text(tsv(labelled_rows(["a", "b"], 4, 1)))
    result = run_engine("init", tmp_path / "d.tsv", "--output", tmp_path / "task.json")
    assert result.exit_code == 1 and "exists; pass --force" in result.stderr
    assert (tmp_path / "task.json").read_text() == "{}"
    (tmp_path / "d.xlsx").write_text("")
    result = run_engine("init", tmp_path / "d.xlsx", "--output", tmp_path / "other.json")
    assert result.exit_code == 1 and "cannot tell the format from the extension '.xlsx'" in result.stderr


@pytest.mark.parametrize("name, content, expected", [
    ("data.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
    ("data.jsonl", b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip-compressed"),
    ("data.csv", b"sentence\nfine words here\nmore words there\n", "1 usable column(s) ('sentence')"),
    ("data.tsv", b"text,label\nsome text,pos\n", "check the delimiter"),
    ("data.jsonl", b'{"text": "good", "label": "pos"}\n{"text": "bad", \n', "line 2: not valid JSON"),
    ("data.jsonl", b'["good", "pos"]\n', "line 1: expected a JSON object"),
])
def test_init_on_hostile_files_is_one_clear_message(name, content, expected, tmp_path, run_engine):
    (tmp_path / name).write_bytes(content)
    result = run_engine("init", tmp_path / name, "--output", tmp_path / "task.json")
    assert result.exit_code == 1, result.stderr
    assert expected in result.stderr and str(tmp_path / name) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "task.json").exists()


def test_init_leaves_nested_values_out_of_the_text(tmp_path, run_engine):
    rows = [{"text": f"a {w} film to watch", "label": w, "meta": {"source": "web", "id": i}}
            for i, w in enumerate(["good", "bad"] * 10)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_engine("init", tmp_path / "data.jsonl", "--output", tmp_path / "task.json")
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "task.json").read_text())
    assert config["data"]["text"] == "text" and config["data"]["label"] == "label"
    assert "left out 'meta': nested values" in result.stderr


def test_a_nested_value_where_text_is_expected_is_a_data_error_at_its_line(write_task, tiny_model_dir, run_engine):
    rows = [{"text": f"a {w} film", "label": w, "meta": {"id": i}} for i, w in enumerate(["good", "bad"] * 8)]
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.jsonl", "text": ["text", "meta"], "validation_split": 0.25},
                       "training": {"epochs": 1}},
                      {"train.jsonl": "".join(json.dumps(r) + "\n" for r in rows)})
    result = run_engine("run", path)
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert "train.jsonl" in result.stderr and "line 1" in result.stderr
    assert "the second text of the pair (data.text) is an object" in result.stderr
