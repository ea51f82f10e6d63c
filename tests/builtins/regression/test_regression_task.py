"""The regression task on a tiny random BERT: targets checked with file and line, normalization fitted and inverted,
predictions on the original scale, and a saved model that plain transformers loads."""

import json
import random

import pytest
import torch

from engine import DataError, Split
from engine.data.features import encode_split
from engine_builtins.regression import RegressionOptions
from engine_builtins.regression.regressor import RegressionTask, regression_loss

GOOD = ["good", "great", "love", "best", "nice", "excellent"]
BAD = ["bad", "terrible", "hate", "worst", "poor", "awful"]
FILLER = ["the", "movie", "film", "food", "place", "service", "was", "is", "very", "this", "it"]


def pairs(n, seed):
    """Sentence pairs whose targets follow the words: ``sim`` counts good words, ``rel`` is 100 minus bad ones."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        good, bad = rng.randint(0, 3), rng.randint(0, 3)
        words = rng.sample(GOOD, good) + rng.sample(BAD, bad) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append({"s1": " ".join(words), "s2": " ".join(rng.sample(FILLER, 3)), "sim": float(good), "rel": 100.0 - bad})
    return rows


def tsv(rows, columns=("s1", "s2", "sim", "rel")):
    return "\t".join(columns) + "\n" + "".join("\t".join(str(r[c]) for c in columns) + "\n" for r in rows)


@pytest.fixture
def task(write_task, tiny_model_dir):
    def make(task=None, files=None, **changes):
        config = {
            "task": task or "regression",
            "model": {"name": str(tiny_model_dir)},
            "data": {"train": "train.tsv", "validation": "dev.tsv", "text": ["s1", "s2"], "label": "sim"},
            "training": {"epochs": 1, "batch_size": 8, "seed": 5},
            "output_dir": "runs/reg",
            **changes,
        }
        data = {"train.tsv": tsv(pairs(48, 1)), "dev.tsv": tsv(pairs(16, 2))}
        return write_task(config, {**data, **(files or {})})

    return make


def split(labels, pair=False):
    """A training split of one-text rows (lines 2, 3...) with these labels; ``None`` leaves the label out."""
    rows = [{"_line": i + 2, "text": "the film", **({"label": v} if v is not None else {})} for i, v in enumerate(labels)]
    if pair:
        for row in rows:
            row["text_pair"] = "the movie"
    return Split("train", rows, "train.tsv")


def regression(**options):
    return RegressionTask(RegressionOptions(**options))


# --- targets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "line 3: target is not a number: 'abc'"),
        ("nan", "line 3: target is 'nan'; expected a finite number"),
        (float("inf"), "line 3: target is inf; expected a finite number"),
        (True, "line 3: target is not a number: True"),
        (None, "line 3: missing target"),
        ([1.0, 2.0], "line 3: expected 1 target (value), got 2"),
    ],
)
def test_bad_targets_name_the_file_and_line(value, message):
    with pytest.raises(DataError) as err:
        regression().fit(split(["1.5", value, "2"]))
    assert str(err.value) == f"train.tsv, {message}"


def test_targets_outside_the_bounds_are_an_error():
    with pytest.raises(DataError, match=r"line 3: target 5.5 is outside task.bounds \[0, 5\]"):
        regression(bounds=(0, 5)).fit(split(["4", "5.5"]))


def test_target_names_must_match_the_label_columns():
    with pytest.raises(DataError, match=r"task\.targets names 3 target"):
        regression(targets=["a", "b", "c"]).fit(split([["1", "2"], ["3", "4"]]))


def test_invalid_task_options_are_reported_alone(task, run_engine):
    result = run_engine("validate", task(task={"name": "regression", "loss": "hubber", "bounds": [5, 0]}))
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "2 problems" in err and "task.loss" in err and "task.bounds: value error, expected [low, high] with low < high" in err
    assert "default head" not in err  # the defaults of a task that could not be built are unknown, not missing


def test_options_are_checked():
    with pytest.raises(ValueError, match="low < high"):
        RegressionOptions(bounds=(5, 0))
    with pytest.raises(ValueError):
        RegressionOptions(loss="hinge")


# --- normalization and the loss -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "shift", "scale"), [("none", [0.0, 0.0], [1.0, 1.0]), ("standardize", [2.0, 7.0], [2.0, 1.0]),
                                ("minmax", [0.0, 6.0], [4.0, 2.0])],
)
def test_normalization_is_fitted_on_train_and_inverted(how, shift, scale, tiny_model_dir):
    from transformers import AutoTokenizer

    train = split([["0", "6"], ["4", "8"], ["0", "8"], ["4", "6"]])
    task = regression(normalize=how)
    task.fit(train)
    assert (task.shift, task.scale) == (pytest.approx(shift), pytest.approx(scale))
    features = encode_split(task, train, AutoTokenizer.from_pretrained(tiny_model_dir), 16)
    normalized = [f["labels"] for f in features]
    assert [task.denormalize(v) for v in normalized] == [pytest.approx([float(a), float(b)]) for a, b in
                                                         (r["label"] for r in train.rows)]
    if how == "standardize":
        assert sum(v[0] for v in normalized) == pytest.approx(0.0)
        assert sum(v[0] ** 2 for v in normalized) / 4 == pytest.approx(1.0)
    if how == "minmax":
        assert min(v[1] for v in normalized) == 0.0 and max(v[1] for v in normalized) == 1.0


def test_a_constant_target_stays_invertible():
    task = regression(normalize="standardize")
    task.fit(split(["3", "3"]))
    assert task.denormalize([0.0]) == [3.0] and task.scale == [1.0]


def test_predictions_are_clamped_to_the_bounds_on_the_original_scale():
    task = regression(normalize="standardize", bounds=(0, 5))
    task.fit(split(["1", "3"]))  # mean 2, std 1
    assert task.denormalize([-3.0]) == [0.0]  # 2 - 3 = -1 -> 0
    assert task.denormalize([2.5]) == [4.5]
    assert task.denormalize([4.0]) == [5.0]


@pytest.mark.parametrize(("kind", "expected"), [("mse", 4.5), ("l1", 1.5), ("huber", 1.25)])
def test_losses(kind, expected):
    # Errors 0 and 3; Huber with delta 1: 0 and 3 - 0.5.
    predicted, target = torch.tensor([[0.0], [3.0]]), torch.tensor([[0.0], [0.0]])
    assert regression_loss(kind, 1.0, predicted, target).item() == pytest.approx(expected)
    assert regression_loss("huber", 4.0, predicted, target).item() == pytest.approx(2.25)  # within delta: squared / 2


def test_a_model_trained_on_pairs_refuses_single_texts(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = regression()
    train = split(["1", "2"], pair=True)
    task.fit(train)
    encode_split(task, train, tokenizer, 16)
    restored = regression()
    restored.load_state_dict(json.loads(json.dumps(task.state_dict())))
    with pytest.raises(DataError, match="trained on pairs of texts, but each row here has one text"):
        encode_split(restored, split(["1"]), tokenizer, 16, labelled=False)


# --- through the CLI ------------------------------------------------------------------------------------------------


def test_bad_targets_in_files_are_reported_with_file_and_line(task, run_engine):
    bad = tsv(pairs(4, 3)).split("\n")
    bad[2] = bad[2].rsplit("\t", 2)[0] + "\tabout 3\t99"
    result = run_engine("run", task(files={"dev.tsv": "\n".join(bad)}))
    assert result.exit_code == 1
    assert "dev.tsv, line 3: target is not a number: 'about 3'" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr

    jsonl = "".join(json.dumps({"s1": "the film", "s2": "a film", "sim": v}) + "\n" for v in (1, 2))
    result = run_engine("run", task(data={"train": "t.jsonl", "text": ["s1", "s2"], "label": "sim"},
                                    files={"t.jsonl": jsonl + '{"s1": "it", "s2": "the film", "sim": Infinity}\n'}))
    assert result.exit_code == 1 and "t.jsonl, line 3: target is inf; expected a finite number" in " ".join(result.stderr.split())

    result = run_engine("run", task(files={"train.tsv": "s1\ts2\tsim\trel\nthe film\tthe movie\t\t1\n"}))
    assert result.exit_code == 1 and "train.tsv, line 2: empty label in column 'sim'" in " ".join(result.stderr.split())


def test_a_missing_second_text_column_is_reported(task, run_engine):
    rows = pairs(4, 3)
    result = run_engine("run", task(files={"dev.tsv": tsv(rows, ("s1", "sim"))}))
    assert result.exit_code == 1
    assert "dev.tsv, line 1: no column 's2'" in " ".join(result.stderr.split())

    jsonl = json.dumps({"s1": "the film", "s2": "a film", "sim": 1}) + "\n" + json.dumps({"s1": "it", "sim": 2}) + "\n"
    result = run_engine("run", task(data={"train": "t.jsonl", "text": ["s1", "s2"], "label": "sim"}, files={"t.jsonl": jsonl}))
    assert result.exit_code == 1 and "t.jsonl, line 2: missing text column 's2'" in " ".join(result.stderr.split())


def test_training_learns_a_learnable_target(task, run_engine):
    # One rate for the random tiny encoder (layer_decay null): what is tested is the head and the targets' scale.
    path = task(task={"name": "regression", "normalize": "standardize"}, training={"epochs": 8, "batch_size": 8, "seed": 5},
                optimizer={"name": "adamw", "lr": 2e-3, "layer_decay": None},
                files={"train.tsv": tsv(pairs(160, 1)), "dev.tsv": tsv(pairs(48, 2))})
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((path.parent / "runs/reg/metrics.json").read_text())["validation"]
    assert set(metrics) == {"loss", "pearson", "spearman", "mse", "rmse", "mae", "r2"}
    assert metrics["pearson"] > 0.6 and metrics["r2"] > 0.3  # an untrained head gives about 0


def test_two_targets_predict_on_the_original_scale_and_load_in_transformers(task, run_engine, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # The targets take the names of data.label's columns.
    path = task(task={"name": "regression", "normalize": "standardize", "bounds": [0, 100]},
                data={"train": "train.tsv", "validation": "dev.tsv", "text": ["s1", "s2"], "label": ["sim", "rel"]})
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run_dir = path.parent / "runs/reg"
    metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert {"pearson", "pearson_sim", "pearson_rel", "rmse_sim", "rmse_rel"} <= set(metrics)

    inputs = pairs(6, 9)
    inputs[0]["s1"] = 'the "best film'  # a lone quote character is part of the text in TSV
    (tmp_path / "in.tsv").write_text(tsv(inputs, ("s1", "s2")))
    result = run_engine("predict", run_dir, "--input", tmp_path / "in.tsv")
    assert result.exit_code == 0, result.stderr
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["text"], p["text_pair"]) for p in predicted] == [(r["s1"], r["s2"]) for r in inputs]
    assert all(set(p["values"]) == {"sim", "rel"} for p in predicted)
    # Trained on standardized targets, the head's outputs are near 0; de-normalized, "rel" is near 100 (97..100).
    assert all(90 < p["values"]["rel"] <= 100 for p in predicted)

    model_dir = run_dir / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.problem_type == "regression" and model.config.num_labels == 2
    assert model.config.id2label == {0: "sim", 1: "rel"}
    stored = model.config.engine_regression
    assert stored["normalize"] == "standardize" and stored["bounds"] == [0, 100]
    with torch.no_grad():
        encoded = tokenizer([r["s1"] for r in inputs], [r["s2"] for r in inputs], padding=True, return_tensors="pt")
        logits = model(**encoded).logits
    # The stored recipe: value = logits * scale + shift, clamped to the bounds.
    values = (logits * torch.tensor(stored["scale"]) + torch.tensor(stored["shift"])).clamp(*stored["bounds"])
    for row, expected in zip(predicted, values.tolist()):
        assert [row["values"]["sim"], row["values"]["rel"]] == pytest.approx(expected, abs=1e-5)
    assert not torch.allclose(logits, values)  # the raw outputs are on the normalized scale


def test_one_target_predicts_a_value_and_evaluate_matches_the_run(task, run_engine, tmp_path):
    path = task(task={"name": "regression", "normalize": "standardize"},
                data={"train": "train.tsv", "validation": "dev.tsv", "test": "dev.tsv", "text": ["s1", "s2"], "label": "rel"})
    assert run_engine("run", path).exit_code == 0
    run_dir = path.parent / "runs/reg"
    result = run_engine("predict", run_dir, "--input", path.parent / "dev.tsv")
    assert result.exit_code == 0, result.stderr
    first = json.loads(result.stdout.splitlines()[0])
    assert set(first) == {"text", "text_pair", "value"}
    assert 90 < first["value"] < 110  # the targets' scale (97..100), not a head's raw output (about 0)

    result = run_engine("evaluate", run_dir, "--data", path.parent / "dev.tsv", "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(test, abs=1e-6)


def test_regression_metrics_refuse_a_classification_task(task, run_engine, write_task):
    path = task(task="classification", metrics=["pearson"],
                training={"epochs": 1, "batch_size": 8, "monitor": "validation.pearson"})
    result = run_engine("run", path)
    assert result.exit_code == 1 and "'pearson' scores numeric predictions" in " ".join(result.stderr.split())
