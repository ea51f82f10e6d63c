"""`engine tune`: trials as ordinary runs, the best one linked, pruning through the callback interface, one study
shared by several processes, and a killed search that continues."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from engine.callbacks import TrainerState
from engine.testing import engine_process
from engine.tune.search import PruneTrial

SPACE = {"optimizer.lr": {"loguniform": [1e-4, 1e-2]}, "training.batch_size": {"choice": [8, 16]},
         "freeze": {"choice": ["none", {"name": "layers", "n": 1}]}}


def search_task(tiny_task, trials=3, **search):
    return tiny_task(rows=32, training={"epochs": 2, "batch_size": 8}, output_dir="runs/search",
                     search={"trials": trials, "space": SPACE, **search})


def study(path):
    return json.loads((path.parent / "runs/search/study.json").read_text())


def test_a_search_runs_trials_as_runs_links_the_best_and_reports(tiny_task, run_engine):
    path = search_task(tiny_task)
    result = run_engine("tune", path)
    assert result.exit_code == 0, result.stderr
    out = path.parent / "runs/search"
    found = study(path)
    assert found["counts"] == {"complete": 3} and found["monitor"] == "validation.accuracy"
    assert [t["number"] for t in found["trials"]] == [0, 1, 2]
    for trial in found["trials"]:
        params = trial["params"]
        assert 1e-4 <= params["optimizer.lr"] <= 1e-2 and params["training.batch_size"] in (8, 16)
        assert params["freeze"] in ("none", {"name": "layers", "n": 1})
        run = out / trial["run_dir"]
        task = json.loads((run / "task.json").read_text())  # an ordinary run, its parameters set
        assert task["optimizer"]["lr"] == params["optimizer.lr"]
        assert task["training"]["batch_size"] == params["training.batch_size"]
        assert task["freeze"]["name"] == (params["freeze"] if params["freeze"] == "none" else "layers")
        assert "search" not in task and not (run / "checkpoints").exists()
        metrics = json.loads((run / "metrics.json").read_text())
        assert trial["value"] == metrics["validation"]["accuracy"]
    best = max(found["trials"], key=lambda t: t["value"])
    assert found["best"]["value"] == best["value"]
    assert (out / "best").resolve() == (out / found["best"]["run_dir"]).resolve()
    assert run_engine("predict", out / "best", "--input", path.parent / "validation.tsv").exit_code == 0
    assert {"index.html", "trials.png", "parameters.png"} <= {p.name for p in (out / "report").iterdir()}
    assert "Best: trial" in result.stderr

    # Run again: the study is complete, nothing more runs; with more trials wanted, only the new ones run.
    assert run_engine("tune", path).exit_code == 0 and len(study(path)["trials"]) == 3
    assert run_engine("tune", path, "--set", "search.trials=4").exit_code == 0
    assert [t["number"] for t in study(path)["trials"]] == [0, 1, 2, 3]


def test_trials_are_seeded_by_their_number(tiny_task, run_engine):
    path = search_task(tiny_task, trials=2, sampler="random")
    assert run_engine("tune", path).exit_code == 0
    first = [t["params"] for t in study(path)["trials"]]
    assert first[0] != first[1]
    assert run_engine("tune", path, "--set", "output_dir=runs/again").exit_code == 0
    again = json.loads((path.parent / "runs/again/study.json").read_text())
    assert [t["params"] for t in again["trials"]] == first


def test_a_trial_worse_than_the_median_at_an_evaluation_stops(tmp_path):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for value in (0.8, 0.9):
        done = study.ask()
        done.report(value, step=64)
        study.tell(done, value)
    trial = study.ask()
    callback = PruneTrial(trial, "validation.accuracy")
    state = TrainerState(run_dir=tmp_path, epochs=3, steps_per_epoch=8, max_steps=24, global_step=8, samples=64)
    callback.on_evaluate(state, {"validation.accuracy": 0.88})  # above the median of 0.8 and 0.9: goes on
    assert not state.should_stop
    callback.on_evaluate(state, {"validation.loss": 0.1})  # not the monitor: nothing reported
    state.samples = 64
    trial2 = study.ask()
    callback = PruneTrial(trial2, "validation.accuracy")
    callback.on_evaluate(state, {"validation.accuracy": 0.5})
    assert state.should_stop and callback.pruned
    assert trial2.storage.get_trial(trial2._trial_id).intermediate_values == {64: 0.5}
    last = TrainerState(run_dir=tmp_path, epochs=3, steps_per_epoch=8, max_steps=24, global_step=24, samples=192)
    PruneTrial(study.ask(), "validation.accuracy").on_evaluate(last, {"validation.accuracy": 0.1})
    assert not last.should_stop  # the last evaluation ends the trial anyway: it completes, with its value


@pytest.mark.parametrize(("search", "message"), [
    ({"space": {"optimizer.lrr": {"loguniform": [1e-5, 1e-3]}}},
     "search.space.optimizer.lrr: with 1e-05: optimizer.lrr: unknown key (did you mean 'lr'?)"),
    ({"space": {"freeze": {"choice": ["none", "embedings"]}}},
     "search.space.freeze: with \"embedings\": freeze.name: unknown freezing strategy 'embedings'"),
    ({"space": {"output_dir": {"choice": ["a", "b"]}}}, "search.space.output_dir: 'output_dir' cannot be searched"),
    ({"space": {"optimizer.lr": {"uniform": [0.1, 0.01]}}}, "expected [low, high] with low < high, got [0.1, 0.01]"),
    ({"space": {"optimizer.lr": {"loguniform": [1e-5, 1e-3], "choice": [1]}}},
     "expected exactly one of loguniform, uniform, int, choice, got loguniform, choice"),
    ({"space": {}}, "search.space: dictionary should have at least 1 item"),
])
def test_the_search_section_is_checked_with_the_rest_of_the_file(search, message, tiny_task, run_engine):
    result = run_engine("validate", tiny_task(search=search))
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_tune_needs_a_search_section_and_a_validation_split(tiny_task, write_task, tiny_model_dir, run_engine):
    result = run_engine("tune", tiny_task())
    assert result.exit_code == 2 and "search: missing" in result.stderr
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv"}, "search": {"space": SPACE}},
                      {"train.tsv": "text\tlabel\na\tx\nb\ty\n"})
    result = run_engine("tune", path)
    assert result.exit_code == 2 and "engine tune scores each trial on a validation split" in result.stderr


@pytest.mark.slow
def test_two_processes_share_one_study_and_finish_its_trials_once(tiny_task):
    path = search_task(tiny_task, trials=5)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": ""}
    workers = [subprocess.Popen([sys.executable, "-m", "engine", "tune", str(path)], cwd=path.parent, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    found = study(path)
    finished = [t for t in found["trials"] if t["state"] in ("complete", "pruned")]
    assert len(finished) == 5 and len({t["number"] for t in finished}) == 5
    assert len({t["run_dir"] for t in finished}) == 5
    assert all("Trial" in err for _, err in outputs), "one process did all the work"
    params = [json.dumps(t["params"], sort_keys=True) for t in finished]
    assert len(set(params)) == 5  # no trial ran twice


@pytest.mark.slow
def test_a_killed_search_continues_and_tries_the_killed_trial_again(tiny_task):
    path = search_task(tiny_task, trials=3)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": ""}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "tune", str(path)], cwd=path.parent, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = path.parent / "runs/search/trials/trial-001"
    deadline = time.monotonic() + 300
    while not second.exists() and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert second.exists()
    result = engine_process("tune", path, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert "trial 1 stopped without finishing" in result.stderr
    trials = {t["number"]: t for t in study(path)["trials"]}
    assert trials[1]["state"] == "fail"
    retry = next(t for t in trials.values() if t.get("retry_of") == 1)
    assert retry["state"] == "complete" and retry["params"] == trials[1]["params"]
    assert sum(t["state"] == "complete" for t in trials.values()) == 3
    assert all(math.isfinite(t["value"]) for t in trials.values() if t["state"] == "complete")
