"""Long runs survive kills: step checkpoints, exact mid-epoch resume after SIGKILL, max_steps, one run per directory."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from engine.testing import labelled_rows, tsv

# Kills its own process with SIGKILL at the end of step `at` — once: a marker file makes later runs leave it be.
KILLER = """
import os, signal
from pathlib import Path
from engine import Callback, hookimpl


class Kill(Callback):
    def __init__(self, options):
        self.at = int(os.environ.get("KILL_AT_STEP", "0"))

    def on_step_end(self, state, logs):
        marker = Path(state.run_dir).parent / "killed"
        if state.global_step == self.at and not marker.exists():
            marker.write_text(str(self.at))
            os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def callback(register):
    register("kill", Kill)
"""

ROWS = 48


@pytest.fixture
def task(write_task, tiny_model_dir):
    def make(output="runs/run", streaming=False, **training):
        config = {
            "task": "classification", "model": {"name": str(tiny_model_dir)},
            "data": {"train": "train.tsv", "validation": "dev.tsv", "streaming": streaming},
            "training": {"epochs": 2, "batch_size": 8, "seed": 11, "save_steps": 2, **training},
            "plugins": ["killer"], "callbacks": ["kill", {"name": "early_stopping", "patience": 5}],
            "output_dir": output,
        }
        path = write_task(config, {"train.tsv": tsv(labelled_rows(["neg", "pos", "mid"], ROWS, 1)),
                                   "dev.tsv": tsv(labelled_rows(["neg", "pos", "mid"], 12, 2))})
        (path.parent / "killer.py").write_text(KILLER)
        return path

    return make


def engine(*args, env=None, **kwargs):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": "", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "engine", *map(str, args)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def weights(run_dir):
    return {**load_file(str(run_dir / "model/model.safetensors")), **load_file(str(run_dir / "model/head.safetensors"))}


def assert_same_run(resumed, direct):
    a, b = weights(resumed), weights(direct)
    assert a.keys() == b.keys()
    gap = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert gap <= 1e-6, f"weights differ by {gap:.2e}"
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((direct / "metrics.json").read_text())
    history = [json.loads(line) for line in (resumed / "history.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (direct / "history.jsonl").read_text().splitlines()]
    strip = lambda records: [{k: v for k, v in r.items() if k != "time"} for r in records]  # noqa: E731
    assert strip(history) == strip(reference)  # every step logged once, as uninterrupted


@pytest.mark.slow
@pytest.mark.parametrize(("batch_size", "accumulation"), [(8, 1), (4, 2)])
def test_sigkill_inside_an_epoch_then_resume_equals_an_uninterrupted_run(task, run_engine, batch_size, accumulation):
    path = task(batch_size=batch_size, gradient_accumulation_steps=accumulation)
    steps_per_epoch = ROWS // (batch_size * accumulation)
    kill_at = random.Random(accumulation).choice([s for s in range(3, 2 * steps_per_epoch) if s % steps_per_epoch])
    killed = engine("run", path, env={"KILL_AT_STEP": str(kill_at)})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    run_dir = path.parent / "runs/run"
    assert not (run_dir / "model").exists()
    checkpoint = max(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))
    saved_at = int(checkpoint.split("-")[1])
    assert kill_at - 2 <= saved_at < kill_at  # save_steps 2: at most two steps to redo

    result = run_engine("run", path, "--resume")
    assert result.exit_code == 0, result.stderr
    assert f"step {saved_at}" in result.stderr and "batch" in result.stderr  # resumed inside the epoch

    direct = task(output="runs/direct", batch_size=batch_size, gradient_accumulation_steps=accumulation)
    assert run_engine("run", direct).exit_code == 0
    assert_same_run(run_dir, path.parent / "runs/direct")


@pytest.mark.slow
def test_a_streamed_run_killed_in_its_second_pass_resumes_exactly(task, run_engine):
    path = task(streaming=True, max_steps=14)  # 6 steps a pass over the 48 rows
    killed = engine("run", path, env={"KILL_AT_STEP": "9"})
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    result = run_engine("run", path, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "Resuming" in result.stderr and "step 8" in result.stderr
    direct = task(output="runs/direct", streaming=True, max_steps=14)
    assert run_engine("run", direct).exit_code == 0
    assert_same_run(path.parent / "runs/run", path.parent / "runs/direct")


@pytest.mark.slow
def test_sigkill_at_any_moment_leaves_a_resumable_run(task, run_engine):
    """Kills at random moments (mid-step, mid-checkpoint, mid-evaluation), each followed by a resume, until done."""
    # The run not killed first: how long it goes on after its first checkpoint sets the window the kills fall in,
    # so that they land inside the run on a fast machine and a slow one alike.
    direct = task(output="runs/direct", save_steps=1, epochs=3)
    process = engine("run", direct)
    while not list(direct.parent.glob("runs/direct/checkpoints/step-*/trainer_state.json")) and process.poll() is None:
        time.sleep(0.02)
    started = time.monotonic()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    window = 0.9 * (time.monotonic() - started)

    path = task(save_steps=1, epochs=3)
    run_dir = path.parent / "runs/run"
    rng = random.Random(5)
    command = ["run", path]
    kills = 0
    for _ in range(6):
        process = engine(*command)
        # From the first whole checkpoint on, any moment can be resumed (before it, --resume has nothing to take up).
        while not list(run_dir.glob("checkpoints/step-*/trainer_state.json")) and process.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, window))
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=300)
        if process.returncode == 0 and kills == 0:  # faster than the calibration run (a busier machine then): again,
            shutil.rmtree(run_dir)                  # from scratch, with kills sooner
            window /= 2
            continue
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, err
        kills += 1
        command = ["run", path, "--resume"]
        if kills == 3:
            break
    assert kills, f"the run ended before its kill every time, {window:.2f} s after its first checkpoint"
    result = run_engine(*command)
    assert result.exit_code == 0, result.stderr
    assert_same_run(run_dir, path.parent / "runs/direct")


def test_a_half_written_checkpoint_is_ignored_and_cleared(task, run_engine):
    path = task()
    run_dir = path.parent / "runs/run"
    assert run_engine("run", path).exit_code == 0
    checkpoints = run_dir / "checkpoints"
    whole = [p.name for p in checkpoints.iterdir() if p.name.startswith("step-")]
    assert whole == ["step-00000012"]  # save_total_limit 1: the newest only (2 epochs of 6 steps)
    # What a kill in the middle of writing a newer checkpoint leaves: a folder without its trainer state.
    partial = checkpoints / "step-00000014.tmp"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    unfinished = checkpoints / "step-00000016"
    unfinished.mkdir()
    result = run_engine("run", path, "--resume")
    assert result.exit_code == 0, result.stderr
    assert "from step-00000012" in result.stderr
    assert not partial.exists()


def test_save_total_limit_keeps_the_newest(task, run_engine):
    path = task(save_total_limit=3, epochs=1)
    assert run_engine("run", path).exit_code == 0
    names = sorted(p.name for p in (path.parent / "runs/run/checkpoints").iterdir())
    assert names == ["best.safetensors", "step-00000002", "step-00000004", "step-00000006"]


@pytest.mark.parametrize(("max_steps", "evaluated_at"), [(4, [4]), (8, [6, 8]), (15, [6, 12, 15])])
def test_max_steps_stops_after_that_many_steps_whatever_the_epochs(task, run_engine, max_steps, evaluated_at):
    path = task(max_steps=max_steps, epochs=1)
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    run_dir = path.parent / "runs/run"
    assert json.loads((run_dir / "manifest.json").read_text())["steps"] == max_steps
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if h["event"] == "evaluate"] == evaluated_at
    last_lr = [h["lr"] for h in history if h["event"] == "train"]
    assert not last_lr or last_lr[-1] >= 0  # the schedule spans max_steps: it reaches its end, not beyond


def test_a_second_run_on_a_directory_in_use_refuses_at_once(task, run_engine):
    path = task(epochs=40, save_steps=None)
    first = engine("run", path)
    lock = path.parent / "runs/run/.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    second = run_engine("run", path, "--overwrite")
    assert time.monotonic() - started < 10
    assert second.exit_code != 0
    assert f"pid {first.pid}" in second.stderr and "in use by another run" in second.stderr
    resumed = run_engine("run", path, "--resume")
    assert resumed.exit_code != 0 and f"pid {first.pid}" in resumed.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    run_dir = path.parent / "runs/run"
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "completed"
    steps = [json.loads(line)["step"] for line in (run_dir / "history.jsonl").read_text().splitlines()
             if '"train"' in line]
    assert steps == sorted(set(steps))  # one writer: no line twice, none interleaved
    assert (run_dir / "model" / "model.safetensors").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(task, run_engine):
    path = task(epochs=1)
    run_dir = path.parent / "runs/run"
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text(json.dumps({"pid": 999999, "host": "elsewhere", "started": "yesterday"}))
    result = run_engine("run", path)  # no process holds the lock: the kernel let go when its holder died
    assert result.exit_code == 0, result.stderr


def test_resuming_with_another_batch_size_is_refused(task, run_engine):
    path = task(epochs=1)
    assert run_engine("run", path).exit_code == 0
    result = run_engine("run", path, "--resume", "--set", "training.batch_size=4")
    assert result.exit_code != 0
    assert "written by 1 process(es) with training.batch_size 8; this run has 1 with 4" in result.stderr
