"""`engine run` end to end on a tiny random BERT: the run directory, reloading, reproducibility, resume, errors."""

import json
import random

import pytest
import torch

from engine.errors import ConfigError

POSITIVE = ["good", "great", "love", "best", "nice", "excellent", "awesome", "fun"]
NEGATIVE = ["bad", "terrible", "hate", "worst", "poor", "awful", "boring"]
FILLER = ["the", "movie", "film", "phone", "food", "place", "service", "was", "is", "very", "really", "this", "it"]


def sentences(n, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = [*rng.sample(FILLER, rng.randint(2, 6)), rng.choice(POSITIVE if label == "positive" else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def tsv(rows, header=("text", "label")):
    return "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)


@pytest.fixture
def task(write_task, tiny_model_dir):
    def make(**changes):
        config = {
            "task": "classification",
            "model": {"name": str(tiny_model_dir)},
            "data": {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"},
            "training": {"epochs": 2, "batch_size": 8, "seed": 7},
            "output_dir": "runs/tiny",
        }
        for key, value in changes.items():
            config[key] = value
        return write_task(config, {"train.tsv": tsv(sentences(64, 1)), "dev.tsv": tsv(sentences(24, 2)),
                                   "test.tsv": tsv(sentences(24, 3))})

    return make


def test_run_writes_a_complete_run_directory(task, run_engine):
    path = task()
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run_dir = path.parent / "runs" / "tiny"
    assert {p.name for p in run_dir.iterdir()} >= {"task.json", "manifest.json", "history.jsonl", "metrics.json", "model", "checkpoints"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    assert {"accuracy", "f1_macro", "loss"} <= set(metrics["test"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["seed"] == 7
    assert len(manifest["data"]["train"]["sha256"]) == 64
    assert {"classification", "formats"} <= {p["name"] for p in manifest["plugins"]}
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1, 2]
    resolved = json.loads((run_dir / "task.json").read_text())
    assert resolved["optimizer"]["name"] == "adamw" and resolved["training"]["epochs"] == 2
    assert "accuracy" in result.stdout  # the metrics table


def test_training_learns_a_separable_task(task, run_engine):
    # One rate for the random tiny encoder (layer_decay null): what is tested is the training loop, not the default.
    path = task(training={"epochs": 6, "batch_size": 8, "seed": 7},
                optimizer={"name": "adamw", "lr": 2e-3, "layer_decay": None})
    assert run_engine("run", path).exit_code == 0
    metrics = json.loads((path.parent / "runs/tiny/metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.8  # chance is 0.5


def test_saved_model_loads_in_transformers_with_the_same_scores(task, run_engine, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = task(training={"epochs": 1, "batch_size": 8, "seed": 7})
    assert run_engine("run", path).exit_code == 0
    model_dir = path.parent / "runs/tiny/model"
    (tmp_path / "in.tsv").write_text("text\nthe movie was great\nthe food was awful\n")
    result = run_engine("predict", path.parent / "runs/tiny", "--input", tmp_path / "in.tsv")
    assert result.exit_code == 0, result.stderr
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["text"] for p in predicted] == ["the movie was great", "the food was awful"]

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        probs = torch.softmax(model(**tokenizer([p["text"] for p in predicted], padding=True, return_tensors="pt")).logits, -1)
    for row, p in zip(predicted, probs.tolist()):
        assert [row["scores"]["negative"], row["scores"]["positive"]] == pytest.approx(p, abs=1e-5)
        assert row["label"] == model.config.id2label[int(torch.tensor(p).argmax())]


def test_same_seed_same_numbers(task, run_engine):
    path = task(training={"epochs": 1, "batch_size": 8, "seed": 11})
    assert run_engine("run", path).exit_code == 0
    first = json.loads((path.parent / "runs/tiny/metrics.json").read_text())
    assert run_engine("run", path, "--overwrite").exit_code == 0
    assert json.loads((path.parent / "runs/tiny/metrics.json").read_text()) == first
    assert run_engine("run", path, "--overwrite", "--set", "training.seed=12").exit_code == 0
    assert json.loads((path.parent / "runs/tiny/metrics.json").read_text()) != first


def test_existing_run_is_never_overwritten_without_flag(task, run_engine):
    path = task(training={"epochs": 1, "batch_size": 8})
    assert run_engine("run", path).exit_code == 0
    before = (path.parent / "runs/tiny/metrics.json").read_bytes()
    result = run_engine("run", path)
    assert result.exit_code != 0
    assert "already holds files" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr
    assert (path.parent / "runs/tiny/metrics.json").read_bytes() == before


INTERRUPT = """
from engine import Callback, hookimpl


class Interrupt(Callback):
    \"\"\"Stands for a killed process: Ctrl-C at the start of the second epoch.\"\"\"

    def __init__(self, options):
        pass

    def on_epoch_begin(self, state):
        if state.epoch == 1:
            raise KeyboardInterrupt


@hookimpl
def callback(register):
    register("interrupt", Interrupt)
"""


def test_resume_after_an_interruption_equals_an_uninterrupted_run(task, run_engine):
    path = task(training={"epochs": 2, "batch_size": 8, "seed": 3}, plugins=["interrupt_plugin"], callbacks=["interrupt"])
    (path.parent / "interrupt_plugin.py").write_text(INTERRUPT)
    assert run_engine("run", path).exit_code == 130
    run_dir = path.parent / "runs/tiny"
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"

    result = run_engine("run", path, "--resume", "--set", "callbacks=[]")
    assert result.exit_code == 0, result.stderr
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1, 2]

    straight = task(training={"epochs": 2, "batch_size": 8, "seed": 3}, output_dir="runs/straight")
    assert run_engine("run", straight).exit_code == 0
    resumed = json.loads((run_dir / "metrics.json").read_text())
    direct = json.loads((path.parent / "runs/straight/metrics.json").read_text())
    assert resumed["test"] == pytest.approx(direct["test"], abs=1e-6)
    assert resumed["validation"] == pytest.approx(direct["validation"], abs=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(task, run_engine):
    result = run_engine("run", task(), "--resume")
    assert result.exit_code == 1 and "no checkpoint to resume from" in result.stderr


def test_unknown_label_in_validation_names_file_and_line(task, run_engine, write_task):
    path = task()
    (path.parent / "dev.tsv").write_text(tsv([("good film", "positive"), ("odd film", "neutral")]))
    result = run_engine("run", path)
    assert result.exit_code == 1
    assert "dev.tsv, line 3: unknown label 'neutral'; expected one of: negative, positive" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_config_errors_exit_2_with_every_problem(task, run_engine):
    path = task(training={"epochs": 0, "batch_sise": 8}, head="lineer")
    result = run_engine("validate", path)
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "3 problems" in err and "training.epochs" in err and "did you mean 'batch_size'" in err and "did you mean 'linear'" in err


def test_debug_shows_the_traceback(task, run_engine):
    path = task(head="lineer")
    with pytest.raises(ConfigError, match="unknown head 'lineer'"):  # raised, not printed: Python shows the traceback
        run_engine("--debug", "validate", path)


def test_evaluate_scores_a_labelled_file(task, run_engine, tmp_path):
    path = task(training={"epochs": 1, "batch_size": 8})
    assert run_engine("run", path).exit_code == 0
    result = run_engine("evaluate", path.parent / "runs/tiny", "--data", path.parent / "test.tsv", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads((tmp_path / "m.json").read_text())
    test = json.loads((path.parent / "runs/tiny/metrics.json").read_text())["test"]
    assert scores == pytest.approx(test, abs=1e-6)


def test_multi_label_and_text_pairs(write_task, tiny_model_dir, run_engine):
    rows = [{"text": f"{a} and {b}", "text_pair": "the film", "label": [x for x in (a, b) if x in ("good", "bad")]}
            for a in ("good", "bad", "fine") for b in ("good", "bad", "fun")] * 3
    path = write_task(
        {"task": {"name": "classification", "multi_label": True}, "model": {"name": str(tiny_model_dir)},
         "data": {"train": "t.jsonl", "validation": "t.jsonl", "text": ["text", "text_pair"]},
         "training": {"epochs": 1, "batch_size": 4}},
        {"t.jsonl": "".join(json.dumps(r) + "\n" for r in rows)},
    )
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((path.parent / "runs/task/metrics.json").read_text())
    assert {"f1_micro", "f1_macro", "accuracy"} <= set(metrics["validation"])
    config = json.loads((path.parent / "runs/task/model/config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"


def test_early_stopping_ends_training_when_the_monitor_stalls(task, run_engine):
    # A learning rate too small to change any prediction: validation accuracy can never improve.
    path = task(training={"epochs": 5, "batch_size": 8}, optimizer={"name": "adamw", "lr": 1e-12},
                callbacks=[{"name": "early_stopping", "patience": 1}])
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    history = [json.loads(line) for line in (path.parent / "runs/tiny/history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1, 2]
    assert "Stopping early after epoch 2" in result.stderr


def test_gradient_accumulation_takes_one_step_per_n_batches(task, run_engine):
    path = task(training={"epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 4})
    assert run_engine("run", path).exit_code == 0
    manifest = json.loads((path.parent / "runs/tiny/manifest.json").read_text())
    assert manifest["steps"] == 2  # 64 rows / 8 per batch / 4 batches per step
    assert manifest["training_time"]["samples"] == 64


def test_monitor_that_no_metric_produces_is_a_clear_error_before_training(task, run_engine):
    path = task(training={"epochs": 1, "batch_size": 8, "monitor": "validation.acuracy"})
    result = run_engine("run", path)
    assert result.exit_code == 2  # a task-file error, found before any model loads
    assert "training.monitor: no metric computes 'acuracy' (did you mean 'accuracy'?)" in " ".join(result.stderr.split())
    assert not (path.parent / "runs").exists()


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_on_bad_data(task, run_engine):
    path = task(training={"epochs": 1, "batch_size": 8})
    assert run_engine("run", path).exit_code == 0
    (path.parent / "dev.tsv").write_text(tsv([("good film", "neutral")]))
    assert run_engine("run", path, "--overwrite").exit_code == 1
    assert (path.parent / "runs/tiny/model/engine.json").is_file()


def test_overwrite_refuses_a_folder_that_is_not_a_run(task, run_engine):
    path = task(output_dir="precious")
    (path.parent / "precious").mkdir()
    (path.parent / "precious" / "thesis.tex").write_text("years of work")
    result = run_engine("run", path, "--overwrite")
    assert result.exit_code == 1 and "does not look like a run directory" in result.stderr
    assert (path.parent / "precious" / "thesis.tex").exists()


def test_predict_format_flag_overrides_the_extension(task, run_engine, tmp_path):
    path = task(training={"epochs": 1, "batch_size": 8})
    assert run_engine("run", path).exit_code == 0
    (tmp_path / "in.txt").write_text("text\nthe movie was great\n")  # TSV content, a .txt name
    result = run_engine("predict", path.parent / "runs/tiny", "--input", tmp_path / "in.txt", "--format", "tsv")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "the movie was great"
    result = run_engine("predict", path.parent / "runs/tiny", "--input", tmp_path / "in.txt", "--format", "tvs")
    assert result.exit_code == 1 and "unknown data format 'tvs' (did you mean 'tsv'?)" in result.stderr
