"""Several tasks on one encoder (docs/multitask.md): the task file, the sampler, a three-task run (classification,
tagging with the CRF, regression) trained, evaluated per task, saved with one encoder, reloaded and predicted per
task and all at once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

import engine
from engine.api.tasks import resolve_task
from engine.errors import ConfigError, EngineError
from engine.training.batching import LengthGroupedBatches, TaskBatches
from engine.training.sampler import TaskSampler, task_probabilities

SIZES = {"big": 40, "small": 10, "tiny": 2}


# --- the sampler ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sampler", "expected"), [
    ("proportional", {"big": 40 / 52, "small": 10 / 52, "tiny": 2 / 52}),
    ("uniform", {"big": 1 / 3, "small": 1 / 3, "tiny": 1 / 3}),
    ({"name": "temperature", "T": 2}, {k: v ** 0.5 / sum(s ** 0.5 for s in SIZES.values()) for k, v in SIZES.items()}),
    ({"name": "temperature", "T": 1}, {"big": 40 / 52, "small": 10 / 52, "tiny": 2 / 52}),
])
def test_sampler_proportions_follow_the_formula(sampler, expected):
    assert task_probabilities(SIZES, sampler) == pytest.approx(expected)
    draws = 30_000
    counts = Counter(TaskSampler(SIZES, sampler, seed=7).task_at(n) for n in range(draws))
    for name, p in expected.items():
        assert counts[name] / draws == pytest.approx(p, abs=0.012), name


def test_the_draw_depends_on_the_seed_and_the_step_alone():
    a, b = TaskSampler(SIZES, "uniform", seed=5), TaskSampler(SIZES, "uniform", seed=5)
    steps = [9_999, 3, 0, 17, 3]  # in any order, any number of times
    assert [a.task_at(n) for n in steps] == [b.task_at(n) for n in steps] == [a.task_at(n) for n in steps]
    other = TaskSampler(SIZES, "uniform", seed=6)
    assert [a.task_at(n) for n in range(200)] != [other.task_at(n) for n in range(200)]


def task_batches(rank: int = 0, processes: int = 1, seed: int = 3) -> TaskBatches:
    samplers = {name: LengthGroupedBatches(list(range(1, 8 * size + 1)), 4, seed, num_processes=processes, rank=rank)
                for name, size in {"a": 6, "b": 3, "c": 1}.items()}
    return TaskBatches(samplers, {"name": "temperature", "T": 2}, seed)


def test_every_process_draws_the_same_tasks_and_takes_its_share_of_the_same_batches():
    one = list(task_batches())
    ranks = [list(task_batches(rank, 2)) for rank in range(2)]
    assert [name for name, _ in ranks[0]] == [name for name, _ in ranks[1]]
    for (name0, share0), (name1, share1) in zip(*ranks):
        assert name0 == name1 and not set(share0) & set(share1)
    assert len(one) == len(task_batches()) == 6 * 8 // 4 + 3 * 8 // 4 + 8 // 4  # an epoch: every task's batches


def test_a_resumed_epoch_continues_the_same_sequence():
    batches = task_batches()
    batches.start_epoch(1)
    whole = list(batches)
    resumed = task_batches()
    resumed.start_epoch(1, skip=7)
    assert list(resumed) == whole[7:]
    batches.start_epoch(2)
    assert list(batches) != whole  # another epoch, another order


# --- the task file -------------------------------------------------------------------------------------------------


def write_files(folder: Path) -> None:
    (folder / "a.tsv").write_text("text\tlabel\nthe film\tgood\na film\tbad\n", encoding="utf-8")
    (folder / "s.tsv").write_text("text\tscore\nthe film\t1.5\na film\t0.5\n", encoding="utf-8")


def resolved_of(folder: Path, task: dict):
    path = folder / "task.json"
    path.write_text(json.dumps(task), encoding="utf-8")
    return resolve_task(path)[0]


TWO = {"tasks": {"sentiment": {"task": "classification", "data": {"train": "a.tsv", "validation": "a.tsv"}},
                 "score": {"task": "regression", "data": {"train": "s.tsv", "validation": "s.tsv", "label": "score"},
                           "weight": 0.5}}}


def test_a_multi_task_file_resolves_each_task_and_records_the_shared_sections_once(tmp_path):
    write_files(tmp_path)
    resolved = resolved_of(tmp_path, {**TWO, "training": {"sampler": {"name": "temperature", "T": 3}}})
    assert list(resolved.tasks) == ["sentiment", "score"] and resolved.weights == {"sentiment": 1.0, "score": 0.5}
    assert resolved.monitor == "validation.combined" and resolved.directions["validation.combined"] == "max"
    written = resolved.to_dict()
    assert set(written["tasks"]["score"]) == {"task", "data", "augment", "head", "metrics", "weight"}
    assert written["training"]["sampler"] == {"name": "temperature", "T": 3.0}
    assert "task" not in written and "data" not in written
    again = resolved_of(tmp_path, written)  # task.json runs again as it is
    assert again.to_dict() == written


def test_a_task_metric_may_be_the_monitor_with_its_own_direction(tmp_path):
    write_files(tmp_path)
    task = {**TWO, "training": {"monitor": "validation.score.mse"},
            "callbacks": [{"name": "early_stopping", "monitor": "validation.sentiment.accuracy"}]}
    resolved = resolved_of(tmp_path, task)
    assert resolved.monitor == "validation.score.mse"
    assert resolved.directions["validation.score.mse"] == "min"
    assert resolved.directions["validation.sentiment.accuracy"] == "max"


def test_config_errors_name_their_paths_in_the_multi_task_file(tmp_path):
    write_files(tmp_path)
    bad = {"tasks": {"sentiment": {"task": "classification", "data": {"train": "a.tsv", "txet": "x"}},
                     "score": {"task": "regresion", "data": {"train": "s.tsv"}, "weight": 0},
                     "two.parts": {"task": "classification", "data": {"train": "a.tsv"}}},
           "head": "linear", "training": {"sampler": {"name": "temperature", "T": -1}, "epochs": 0,
                                          "monitor": "validation.nope.accuracy"}}
    with pytest.raises(ConfigError) as caught:
        resolved_of(tmp_path, bad)
    paths = [issue.path for issue in caught.value.issues]
    for expected in ["head", "tasks.two.parts", "tasks.score.weight", "training.sampler.T", "training.monitor"]:
        assert expected in paths, caught.value
    del bad["tasks"]["score"]["weight"], bad["tasks"]["two.parts"], bad["head"], bad["training"]["sampler"]
    del bad["training"]["monitor"]
    with pytest.raises(ConfigError) as caught:
        resolved_of(tmp_path, bad)
    paths = [issue.path for issue in caught.value.issues]
    assert "tasks.sentiment.data.txet" in paths and "tasks.score.task.name" in paths, caught.value
    assert paths.count("training.epochs") == 1  # a shared section's problem, once


def test_a_one_task_file_resolves_as_before(tmp_path):
    write_files(tmp_path)
    resolved = resolved_of(tmp_path, {"task": "classification", "data": {"train": "a.tsv"}})
    assert resolved.tasks is None and resolved.monitor == "validation.accuracy"
    written = resolved.to_dict()
    assert "tasks" not in written and "sampler" not in written["training"]


# --- a three-task run ----------------------------------------------------------------------------------------------

TEXTS = ["john was good", "the film was a good paris", "mary", "a good film paul berlin"]


def test_the_run_evaluates_every_task_and_saves_one_encoder(three_task_run):
    run_dir = three_task_run.run_dir
    metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    for key in ["sentiment.accuracy", "entities.entity_f1", "score.pearson", "combined"]:
        assert key in metrics
    evaluated = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()
                 if '"evaluate"' in line]
    assert evaluated and "validation.sentiment.accuracy" in evaluated[-1] and "validation.combined" in evaluated[-1]
    model = run_dir / "model"
    assert sorted(p.name for p in (model / "heads").iterdir()) == ["entities", "score", "sentiment"]
    assert (model / "model.safetensors").is_file() and not (model / "head.safetensors").exists()
    listed = json.loads((model / "engine.json").read_text())
    assert list(listed["tasks"]) == ["sentiment", "entities", "score"]
    assert json.loads((model / "heads/entities/engine.json").read_text())["head"]["name"] == "crf"
    for name in ("sentiment", "entities", "score"):
        assert (run_dir / "predictions" / name / "validation.jsonl").is_file()
    report = (run_dir / "report/index.html").read_text()
    for name in ("sentiment", "entities", "score"):  # each task's own sections, titled with its name
        assert f"{name}: validation (the best model" in report, name
    task_json = json.loads((run_dir / "task.json").read_text())
    assert task_json["tasks"]["score"]["weight"] == 0.5 and task_json["training"]["sampler"] == "proportional"


def test_a_multi_task_run_has_each_tasks_baseline(three_task_run):
    manifest = json.loads((three_task_run.run_dir / "manifest.json").read_text())
    baseline = manifest["baseline"]
    assert {"sentiment.accuracy", "entities.entity_f1", "score.mse"} <= set(baseline["validation"])
    assert "sentiment: the training data's most frequent label" in baseline["predicts"]


def test_a_task_naming_its_benchmark_gets_the_published_scores_beside_its_own(three_task_run):
    # Only the entities task names one (data.benchmark: conll2003); its score is its own, not the combined one.
    (entry,) = json.loads((three_task_run.run_dir / "manifest.json").read_text())["published"]
    assert (entry["task"], entry["benchmark"]) == ("entities", "conll2003")
    own = three_task_run.result.metrics["validation"]["entities.entity_f1"]
    assert {(row["metric"], row["run"], row["run_split"]) for row in entry["scores"]} == {
        ("entity_f1", own, "validation")}
    assert [row["published"] for row in entry["scores"]] == [0.924, 0.928]  # BERT-base, nearer this size, first
    assert entry == three_task_run.result.published[0]


def test_engine_report_draws_every_tasks_sections_again(three_task_run, run_engine):
    index = three_task_run.run_dir / "report/index.html"
    index.unlink()
    result = run_engine("report", three_task_run.run_dir)
    assert result.exit_code == 0, result.stderr
    report = index.read_text()
    assert all(f"{name}: validation (the best model" in report for name in ("sentiment", "entities", "score"))


def test_reloaded_tasks_share_one_encoder_and_one_pass_equals_each_task(three_task_run, assert_close):
    predictor = engine.load(three_task_run.run_dir)
    assert predictor.tasks is not None
    encoders = {id(loaded.model.backbone) for loaded in predictor.tasks.values()}
    assert len(encoders) == 1
    each = {name: predictor.predict(TEXTS, task=name) for name in predictor.tasks}
    together = predictor.predict(TEXTS)
    assert len(together) == len(TEXTS)
    for i in range(len(TEXTS)):
        for name in each:
            assert_close(together[i][name], each[name][i])
    assert set(predictor.predict("john was good")) == {"sentiment", "entities", "score"}


def test_one_task_is_named_to_predict_it(three_task_run, run_engine):
    predictor = engine.load(three_task_run.run_dir)
    with pytest.raises(EngineError, match="sentiment, entities, score"):
        predictor.predict(TEXTS, task="nope")
    inputs = three_task_run.folder / "inputs.tsv"
    inputs.write_text("text\n" + "".join(f"{t}\n" for t in TEXTS), encoding="utf-8")
    result = run_engine("predict", three_task_run.run_dir, "--input", inputs, "--task", "score")
    assert result.exit_code == 0, result.stderr
    values = [json.loads(line)["value"] for line in result.stdout.splitlines()]
    assert values == pytest.approx([r["value"] for r in predictor.predict(TEXTS, task="score")], abs=1e-5)
    refused = run_engine("predict", three_task_run.run_dir, "--input", inputs)
    assert refused.exit_code != 0 and "--task NAME" in refused.stderr


def test_the_saved_weights_are_the_trained_best(three_task_run):
    from safetensors.torch import load_file

    best = load_file(str(three_task_run.run_dir / "checkpoints/best.safetensors"))
    saved = load_file(str(three_task_run.run_dir / "model/model.safetensors"))
    for key, value in saved.items():
        assert torch.equal(best[f"backbone.{key}"], value)
    head = load_file(str(three_task_run.run_dir / "model/heads/score/head.safetensors"))
    for key, value in head.items():
        assert torch.equal(best[f"head.score.{key}"], value)


def test_engine_validate_names_every_task(tmp_path, run_engine):
    write_files(tmp_path)
    path = tmp_path / "task.json"
    path.write_text(json.dumps(TWO), encoding="utf-8")
    result = run_engine("validate", path)
    assert result.exit_code == 0, result.stderr
    assert "multi-task file (sentiment: classification" in result.stderr and "score: regression" in result.stderr


def test_a_multi_task_runs_encoder_starts_a_one_task_run(three_task_run, tmp_path):
    """docs/multitask.md: a small task fine-tuned alone from the encoder the tasks trained together."""
    encoder = three_task_run.run_dir / "model"
    (tmp_path / "reg.tsv").write_text((three_task_run.folder / "reg_train.tsv").read_text(), encoding="utf-8")
    result = engine.train({"task": "regression", "model": {"name": str(encoder)},
                           "data": {"train": str(tmp_path / "reg.tsv"), "validation": str(tmp_path / "reg.tsv"),
                                    "label": "score"},
                           "training": {"epochs": 1, "batch_size": 8}, "output_dir": str(tmp_path / "run")})
    assert "pearson" in result.metrics["validation"]
    trained = json.loads((tmp_path / "run/task.json").read_text())
    assert trained["model"]["name"] == str(encoder)


def test_a_loss_weight_survives_gradient_clipping(multitask_files, tiny_model_dir, tmp_path):
    # One step of plain SGD with every gradient clipped (max_grad_norm far under any gradient's norm): tasks weighted
    # 3 move the encoder three times as far as tasks weighted 1, whichever task the step draws. Clipping to a fixed
    # norm undid any weight: both steps were the same (bench/multitask.py's weighted run equalled the unweighted one
    # to every digit).
    from safetensors.torch import load_file

    start = {k: v for k, v in load_file(str(tiny_model_dir / "model.safetensors")).items() if v.is_floating_point()}
    moved = {}
    for weight in (1.0, 3.0):
        folder = tmp_path / f"weight{weight:g}"
        folder.mkdir()
        task = multitask_files(folder, max_steps=1, max_grad_norm=1e-4)
        for entry in task["tasks"].values():
            entry["weight"] = weight
        task |= {"optimizer": {"name": "sgd", "lr": 100.0, "momentum": 0.0},
                 "scheduler": {"name": "constant", "warmup_ratio": 0.0}}
        (folder / "task.json").write_text(json.dumps(task), encoding="utf-8")
        run_dir = engine.train(folder / "task.json").run_dir
        end = load_file(str(run_dir / "model" / "model.safetensors"))
        moved[weight] = torch.cat([(end[k].float() - v.float()).flatten() for k, v in start.items() if k in end])
    assert moved[1.0].norm() > 0
    assert torch.allclose(moved[3.0], 3 * moved[1.0], rtol=1e-3, atol=1e-6)  # float32 steps of ~1e-3: 1e-7 apart
