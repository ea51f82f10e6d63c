"""The model card (engine.model.card): a README.md in the Hugging Face Hub's format, whose metadata the Hub's own
parser reads (library, pipeline tag, base model, metrics by split, the data's fingerprints), and whose examples run
as written on the model they describe: engine's Python API always, plain transformers where the head allows."""

from __future__ import annotations

import re

import pytest
import yaml

from engine.model.card import base_model, model_card, write_model_card

META = {"task": {"name": "classification"}, "task_state": {"labels": ["bad", "good"]}, "head": {"name": "linear"},
        "transformers_loadable": True, "max_length": 128, "plugins": {"classification": "0.2.0"},
        "data": {"format": "tsv", "options": {"train": "train.tsv", "text": "sentence"}}}
METRICS = {"validation": {"loss": 0.5, "accuracy": 0.75}, "test": {"loss": 0.6, "accuracy": 0.7}}
MANIFEST = {"seed": 13, "steps": 40, "packages": {"engine": "0.2.0"},
            "best": {"monitor": "validation.accuracy", "value": 0.75, "epoch": 2},
            "data": {"train": {"path": "/data/train.tsv", "sha256": "a" * 64, "bytes": 1000},
                     "validation": {"path": "/data/dev.tsv", "sha256": "b" * 64, "bytes": 300},
                     "test": {"path": "/data/test.tsv", "sha256": "c" * 64, "bytes": 200}}}
TASK = {"model": {"name": "all-MiniLM-L6-v2"}}


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def blocks(card: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", card, re.S)


def test_the_metadata_names_the_library_task_base_model_metrics_by_split_and_data_fingerprints():
    data = front_matter(model_card(META, METRICS, MANIFEST, task_config=TASK, level="sequence"))
    assert data["library_name"] == "engine" and data["pipeline_tag"] == "text-classification"
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["metrics"] == ["accuracy"] and {"engine", "classification", "transformers"} <= set(data["tags"])
    (index,) = data["model-index"]
    by_split = {r["dataset"]["split"]: r for r in index["results"]}
    assert set(by_split) == {"validation", "test"}
    assert by_split["test"]["dataset"] == {"name": "test.tsv", "type": "test.tsv", "split": "test",
                                           "args": {"sha256": "c" * 64, "bytes": 200}}
    assert {m["type"]: m["value"] for m in by_split["validation"]["metrics"]} == {"loss": 0.5, "accuracy": 0.75}
    assert data["engine"]["data"]["train"] == {"file": "train.tsv", "sha256": "a" * 64, "bytes": 1000}


def test_the_hubs_own_parser_reads_the_results():
    hub = pytest.importorskip("huggingface_hub")
    card = hub.ModelCard(model_card(META, METRICS, MANIFEST, task_config=TASK, level="sequence"))
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("test", "accuracy")] == 0.7 and results[("validation", "loss")] == 0.5
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_head_transformers_cannot_load_gets_no_transformers_example():
    card = model_card({**META, "head": {"name": "crf"}, "transformers_loadable": False}, METRICS, MANIFEST,
                      level="token")
    assert front_matter(card)["pipeline_tag"] == "token-classification"
    assert "from transformers import" not in card and "not the `crf` head" in card
    assert "engine.load(" in card and "engine serve" in card


def test_the_level_is_told_by_the_saved_transformers_class_when_not_given(classification_run):
    card = write_model_card(classification_run.run_dir / "model").read_text()
    assert front_matter(card)["pipeline_tag"] == "text-classification" and "AutoModelForSequenceClassification" in card


def test_a_card_without_metrics_or_manifest_is_still_a_card():
    data = front_matter(model_card(META, {}, {}))
    assert "model-index" not in data and "pipeline_tag" not in data and data["engine"]["data"] == {}


@pytest.mark.parametrize(("name", "expected"), [
    ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"), ("bert-base-cased", "bert-base-cased"),
    ("google-bert/bert-base-cased", "google-bert/bert-base-cased"), ("/models/mine", None), ("./mine", None),
    (None, None),
])
def test_the_base_model_is_a_hub_id_or_nothing(name, expected):
    assert base_model(name) == expected


@pytest.mark.parametrize(("run", "loadable"), [("classification_run", True), ("regression_run", True),
                                               ("tagging_run", False)])
def test_the_cards_examples_run_on_the_model_they_describe(run, loadable, request):
    trained = request.getfixturevalue(run)
    level = "token" if run == "tagging_run" else "sequence"
    card = write_model_card(trained.run_dir / "model", level=level).read_text()
    data = front_matter(card)
    assert set(data["engine"]["data"]) == {"train", "validation"}
    assert {r["dataset"]["split"] for r in data["model-index"][0]["results"]} == {"validation"}
    python = blocks(card, "python")
    assert len(python) == (2 if loadable else 1)
    for block in python:
        exec(compile(block, "README.md", "exec"), {})


def test_every_finished_run_writes_its_card(classification_run):
    card = (classification_run.run_dir / "model" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "engine" and meta["pipeline_tag"] == "text-classification"
    assert "accuracy" in card and "engine.load(" in card
