"""`engine export RUN_DIR --task NAME OUTPUT_DIR` (docs/multitask.md): one task of the three-task run as a one-task
model folder, which engine loads with the predictions of the multi-task model and plain transformers loads whole
where the head is one it knows (the classification task's; not the tagging task's CRF); and its refusals."""

from __future__ import annotations

import json

import pytest
import torch

import engine
from engine.api import export
from engine.errors import EngineError

TEXTS = ["john was good", "the film was a good paris", "mary", "a good film paul berlin"]


@pytest.fixture(scope="module")
def exported(three_task_run, tmp_path_factory):
    """The sentiment task (linear head) and the entities task (CRF head), each exported once."""
    folder = tmp_path_factory.mktemp("exported")
    return {name: export(three_task_run.run_dir, name, folder / name) for name in ("sentiment", "entities")}


def test_the_exported_task_predicts_as_the_multi_task_model(three_task_run, exported, assert_close):
    multi = engine.load(three_task_run.run_dir)
    for name, result in exported.items():
        one = engine.load(result.model_dir)
        assert one.tasks is None  # a one-task model
        assert_close(one.predict(TEXTS), multi.predict(TEXTS, task=name))


def test_the_folder_is_what_a_one_task_run_saves(three_task_run, exported):
    folder = exported["sentiment"].model_dir
    meta = json.loads((folder / "engine.json").read_text())
    assert set(meta) == {"task", "task_state", "head", "transformers_loadable", "max_length", "plugins", "data"}
    task_meta = json.loads((three_task_run.run_dir / "model/heads/sentiment/engine.json").read_text())
    assert meta["task_state"] == task_meta["task_state"] and meta["data"] == task_meta["data"]
    assert meta["transformers_loadable"] is True
    for name in ("model.safetensors", "config.json", "head.safetensors", "README.md"):
        assert (folder / name).is_file(), name
    card = (folder / "README.md").read_text()
    assert "AutoModelForSequenceClassification" in card and "accuracy" in card
    crf = json.loads((exported["entities"].model_dir / "engine.json").read_text())
    assert crf["transformers_loadable"] is False and crf["head"]["name"] == "crf"
    assert exported["entities"].transformers_class is None


def test_transformers_loads_the_classification_task_with_the_same_logits(three_task_run, exported):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = exported["sentiment"].model_dir
    assert exported["sentiment"].transformers_class == "AutoModelForSequenceClassification"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = json.loads((folder / "engine.json").read_text())["task_state"]["labels"]
    assert model.config.id2label == dict(enumerate(labels))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    view = engine.load(three_task_run.run_dir).tasks["sentiment"].model
    with torch.no_grad():
        logits = model(**batch).logits
        expected = view(**batch).logits.cpu()
    assert torch.allclose(logits, expected, atol=1e-5)


def test_the_command_writes_the_folder_and_says_what_loads_it(three_task_run, run_engine, tmp_path, assert_close):
    result = run_engine("export", three_task_run.run_dir, "--task", "entities", tmp_path / "entities")
    assert result.exit_code == 0, result.stderr
    assert "cannot load its 'crf' head" in result.stderr
    inputs = tmp_path / "in.conll"  # read as the task's training data was: CoNLL, a word a line
    inputs.write_text("\n".join("".join(f"{word}\n" for word in text.split()) for text in TEXTS), encoding="utf-8")
    predicted = run_engine("predict", tmp_path / "entities", "--input", inputs)
    assert predicted.exit_code == 0, predicted.stderr
    records = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert_close(records, engine.load(three_task_run.run_dir).predict(TEXTS, task="entities"))

    again = run_engine("export", three_task_run.run_dir, "--task", "sentiment", tmp_path / "entities", "--overwrite")
    assert again.exit_code == 0, again.stderr
    assert "AutoModelForSequenceClassification.from_pretrained" in again.stderr
    assert json.loads((tmp_path / "entities/engine.json").read_text())["head"]["name"] != "crf"


def test_refusals_name_what_was_expected(three_task_run, exported, run_engine, tmp_path):
    run_dir = three_task_run.run_dir

    def refused(*args):
        result = run_engine("export", *args)
        assert result.exit_code != 0 and "Traceback" not in result.stderr
        return " ".join(result.stderr.split())  # the console wraps long lines

    assert "name one of its tasks: sentiment, entities, score" in refused(run_dir, tmp_path / "out")
    assert "no task 'nope'; name one of its tasks: sentiment, entities, score" in refused(
        run_dir, "--task", "nope", tmp_path / "out")
    assert "a one-task model; this folder already is the model" in refused(
        exported["sentiment"].model_dir, "--task", "sentiment", tmp_path / "out")
    adapter = tmp_path / "adapter"  # what RUN_DIR/adapter/ of a run with an adapter lists
    adapter.mkdir()
    (adapter / "engine.json").write_text(json.dumps({"tasks": {"sentiment": "heads/sentiment"},
                                                     "adapter": {"name": "lora"}}), encoding="utf-8")
    assert "an adapter folder; export from the run directory" in refused(adapter, "--task", "sentiment",
                                                                         tmp_path / "out")
    assert "no such run directory" in refused(tmp_path / "missing", "--task", "sentiment", tmp_path / "out")
    assert "overlaps the model it exports" in refused(run_dir, "--task", "sentiment", run_dir / "model/heads/score",
                                                      "--overwrite")
    assert (run_dir / "model/heads/score/head.safetensors").is_file()
    assert not (tmp_path / "out").exists()  # nothing written by a refusal

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine", encoding="utf-8")
    assert "already holds files; pass --overwrite" in refused(run_dir, "--task", "sentiment", kept)
    assert "does not look like an exported model (no engine.json); not deleting it" in refused(
        run_dir, "--task", "sentiment", kept, "--overwrite")
    assert (kept / "notes.txt").read_text() == "mine"


def test_an_empty_output_folder_is_used(three_task_run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = export(three_task_run.run_dir, "score", tmp_path / "empty")
    assert (result.model_dir / "engine.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "empty"]  # no temporary folder left beside it
    with pytest.raises(EngineError, match="already holds files"):
        export(three_task_run.run_dir, "score", tmp_path / "empty")
