"""`engine schema` takes both shapes of a task file: one task (as engine validate takes it) and several (`tasks`,
docs/multitask.md), and refuses what engine/config/multitask.py refuses; docs/reference.md describes `tasks`."""

import json
from pathlib import Path

import pytest

from engine.config.resolve import read_task_file, resolve
from engine.errors import ConfigError

jsonschema = pytest.importorskip("jsonschema")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASK_FILES = sorted(EXAMPLES.glob("*/task.json")) + sorted(EXAMPLES.glob("*/tune.json"))


@pytest.fixture
def registry(plugin_manager):
    return plugin_manager.registry()


@pytest.fixture
def validator(registry):
    from engine.config.schema import task_schema

    schema = task_schema(registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def three_tasks():
    return {
        "model": {"name": "all-MiniLM-L6-v2", "max_length": 128},
        "tasks": {
            "sentiment": {"task": "classification", "data": {"format": "tsv", "train": "sst2/train.tsv"},
                          "metrics": ["accuracy", "f1_macro"], "augment": [{"name": "random_swap", "p": 0.2}]},
            "entities": {"task": "tagging", "data": {"format": "conll", "train": "conll/train.txt"}, "head": "crf"},
            "similarity": {"task": {"name": "regression", "bounds": [0, 5]},
                           "data": {"format": "tsv", "train": "stsb/train.tsv", "text": ["sentence1", "sentence2"],
                                    "label": "score"},
                           "weight": 0.5},
        },
        "optimizer": {"name": "adamw", "lr": 5e-5},
        "training": {"epochs": 3, "batch_size": 32, "sampler": {"name": "temperature", "T": 2.0},
                     "monitor": "validation.combined"},
        "callbacks": ["early_stopping"],
        "output_dir": "runs/multi",
    }


def accepted_by_engine(raw, registry, tmp_path):
    try:
        resolve(raw, registry, source=tmp_path / "task.json")
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_examples_task_files_validate(validator, path, registry):
    """The one-task examples as before, and the multi-task example; engine's own validation agrees."""
    validator.validate(json.loads(path.read_text(encoding="utf-8")))
    if path.name == "task.json":
        resolve(read_task_file(path), registry, source=path)


def test_the_examples_are_found():
    assert {p.parent.name for p in TASK_FILES} >= {"sentiment", "ner", "regression", "multitask"}


def test_a_three_task_file_validates(validator, registry, tmp_path):
    raw = three_tasks()
    validator.validate(raw)
    assert accepted_by_engine(raw, registry, tmp_path)  # the schema and engine validate agree
    validator.validate({**raw, "adapter": {"name": "lora", "r": 4}})  # shared, like the encoder
    for sampler in ("proportional", "uniform", "temperature", {"name": "uniform"}):
        validator.validate({**raw, "training": {"sampler": sampler}})
    validator.validate({"tasks": {"only": {"task": "classification", "data": {"format": "tsv", "train": "t.tsv"}}}})


def without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def broken(change):
    raw = three_tasks()
    change(raw)
    return raw


INVALID = {
    "task and tasks": lambda raw: raw.update(task="classification", data={"train": "t.tsv"}),
    "task beside tasks": lambda raw: raw.update(task="classification"),
    "head beside tasks": lambda raw: raw.update(head="linear"),
    "search beside tasks": lambda raw: raw.update(search={"space": {"optimizer.lr": {"loguniform": [1e-5, 1e-4]}}}),
    "unknown key in an entry": lambda raw: raw["tasks"]["sentiment"].update(labels=["a", "b"]),
    "an entry without data": lambda raw: raw["tasks"].update(sentiment={"task": "classification"}),
    "a name starting with a digit": lambda raw: raw["tasks"].update({"1st": raw["tasks"].pop("sentiment")}),
    "a name with a dot": lambda raw: raw["tasks"].update({"sst.2": raw["tasks"].pop("sentiment")}),
    "a name with a space": lambda raw: raw["tasks"].update({"sst 2": raw["tasks"].pop("sentiment")}),
    "a weight of 0": lambda raw: raw["tasks"]["similarity"].update(weight=0),
    "a negative weight": lambda raw: raw["tasks"]["similarity"].update(weight=-1),
    "no tasks": lambda raw: raw.update(tasks={}),
    "an unknown task type": lambda raw: raw["tasks"]["sentiment"].update(task="summarization"),
    "an unknown head option": lambda raw: raw["tasks"]["entities"].update(head={"name": "crf", "depth": 2}),
    "an unknown data option": lambda raw: raw["tasks"]["sentiment"]["data"].update(sheet="Sheet1"),
    "an unknown sampler": lambda raw: raw["training"].update(sampler="round_robin"),
    "a temperature of 0": lambda raw: raw["training"].update(sampler={"name": "temperature", "T": 0}),
    "an unknown sampler option": lambda raw: raw["training"].update(sampler={"name": "uniform", "tau": 1}),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_a_broken_multi_task_file_does_not_validate(validator, registry, tmp_path, name):
    raw = broken(INVALID[name])
    assert raw != three_tasks()
    assert not validator.is_valid(raw), f"the schema takes {name}"
    assert not accepted_by_engine(raw, registry, tmp_path), f"engine validate takes {name}: the schema should too"


def test_a_one_task_file_takes_no_sampler_and_still_needs_task_and_data(validator):
    one = json.loads((EXAMPLES / "sentiment" / "task.json").read_text(encoding="utf-8"))
    validator.validate(one)
    assert not validator.is_valid({**one, "training": {**one["training"], "sampler": "uniform"}})
    assert not validator.is_valid(without(one, "data"))
    assert not validator.is_valid(without(one, "task"))
    assert not validator.is_valid({**one, "weight": 2})


def test_task_entries_reuse_the_one_task_sections(validator):
    schema = validator.schema
    entry = schema["$defs"]["TaskEntry"]
    for key in ("task", "data", "head", "metrics", "augment"):
        assert entry["properties"][key] == {"$ref": f"#/properties/{key}"} and key in schema["properties"]
    assert entry["properties"]["weight"]["default"] == 1
    assert entry["additionalProperties"] is False


def test_the_reference_describes_tasks_weight_and_the_sampler():
    from engine.cli.reference import built_in_reference

    text = built_in_reference()
    assert "| `tasks` |" in text and "## `tasks`" in text and "### `training.sampler`" in text
    assert "| `weight` | `float` | `1.0` |" in text
    assert "| `T` | `float` | `2.0` |" in text

