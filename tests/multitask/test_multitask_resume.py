"""A multi-task run killed inside an epoch resumes to the weights of the run not killed: the checkpoint holds the
model, optimizer, scheduler, RNGs and the batch inside the epoch, and the task of every batch is drawn from the seed
and the batch's number alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from safetensors.torch import load_file

# Kills its own process with SIGKILL at the end of step `at`, once (as tests/core/test_resume.py does).
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


def weights(run_dir):
    found = {f"encoder.{k}": v for k, v in load_file(str(run_dir / "model/model.safetensors")).items()}
    for head in sorted((run_dir / "model/heads").iterdir()):
        found.update({f"{head.name}.{k}": v for k, v in load_file(str(head / "head.safetensors")).items()})
    return found


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_killed_multi_task_run_resumes_to_the_uninterrupted_weights(streamed, multitask_files, tmp_path, run_engine):
    (tmp_path / "killer.py").write_text(KILLER)
    task = {**multitask_files(tmp_path, save_steps=2, sampler={"name": "temperature", "T": 2}),
            "plugins": ["killer"], "callbacks": ["kill"]}
    task["tasks"]["sentiment"]["data"]["streaming"] = streamed  # a stream's resume reads past the batches done
    (tmp_path / "task.json").write_text(json.dumps(task))
    (tmp_path / "direct.json").write_text(json.dumps({**task, "output_dir": "direct"}))
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": "", "KILL_AT_STEP": "13"}
    killed = subprocess.run([sys.executable, "-m", "engine", "run", str(tmp_path / "task.json")], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "run/model").exists()

    resumed = run_engine("run", tmp_path / "task.json", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "step 12" in resumed.stderr and "batch" in resumed.stderr  # inside the second epoch (9 batches each)
    assert run_engine("run", tmp_path / "direct.json").exit_code == 0

    a, b = weights(tmp_path / "run"), weights(tmp_path / "direct")
    assert a.keys() == b.keys()
    gap = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert gap <= 1e-6, f"weights differ by {gap:.2e}"
    assert json.loads((tmp_path / "run/metrics.json").read_text()) == \
        json.loads((tmp_path / "direct/metrics.json").read_text())
