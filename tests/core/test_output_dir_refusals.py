"""Every way `engine run` refuses its output directory: exit 1, one message naming the path, no traceback, and the
directory (with its parents and hidden files) byte for byte as it was."""

import json
import os
from pathlib import Path

import pytest

from engine.rundir.layout import claim_output_dir
from engine.testing import labelled_rows, tsv


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (hidden ones included): a file's bytes, None for a folder."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def task(write_task, tiny_model_dir):
    def make(output_dir="runs/tiny", **training):
        return write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                           "data": {"train": "train.tsv", "validation": "dev.tsv"},
                           "training": {"epochs": 1, "batch_size": 8, "seed": 1, **training},
                           "output_dir": output_dir},
                          {"train.tsv": tsv(labelled_rows(["neg", "pos"], 32, seed=1)),
                           "dev.tsv": tsv(labelled_rows(["neg", "pos"], 8, seed=2))})

    return make


def refused(run_engine, path, *args):
    root = path.parent
    before = snapshot(root)
    result = run_engine("run", path, *args)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(root) == before, "a refused run changed the files under the task's folder"
    return result.stderr


def test_a_folder_with_files_is_refused_and_gets_no_lock_file(task, run_engine):
    path = task()
    folder = path.parent / "runs" / "tiny"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    message = refused(run_engine, path)
    assert "already holds files" in message and str(folder) in message
    assert not (folder / ".lock").exists()


def test_a_finished_run_is_refused_without_overwrite_or_resume(task, run_engine):
    path = task()
    assert run_engine("run", path).exit_code == 0
    (path.parent / "runs" / "tiny" / ".lock").unlink()  # as a run copied from elsewhere arrives
    message = refused(run_engine, path)
    assert "already holds files" in message and "--overwrite" in message


def test_an_output_dir_that_is_a_file_is_refused(task, run_engine):
    path = task()
    (path.parent / "runs").mkdir()
    (path.parent / "runs" / "tiny").write_text("a file, not a run")
    message = refused(run_engine, path)
    assert "is a file, not a directory" in message and "runs/tiny" in message


def test_an_output_dir_under_a_file_is_refused(task, run_engine):
    path = task(output_dir="notes.txt/run")
    (path.parent / "notes.txt").write_text("a file")
    message = refused(run_engine, path)
    assert "notes.txt is a file, not a directory" in message


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder")
def test_an_unwritable_parent_is_refused(task, run_engine):
    path = task(output_dir="locked/run")
    locked = path.parent / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        message = refused(run_engine, path)
    finally:
        locked.chmod(0o700)
    assert "not writable" in message


def test_resume_with_nothing_to_resume_creates_nothing(task, run_engine):
    path = task()
    message = refused(run_engine, path, "--resume")
    assert "no checkpoint to resume from" in message
    assert not (path.parent / "runs").exists()


def test_resume_of_a_folder_without_checkpoints_is_refused(task, run_engine):
    path = task()
    (path.parent / "runs" / "tiny").mkdir(parents=True)
    (path.parent / "runs" / "tiny" / "task.json").write_text("{}")
    assert "no checkpoint to resume from" in refused(run_engine, path, "--resume")


def test_an_incompatible_resume_is_refused_before_anything_is_cleaned(task, run_engine):
    path = task(batch_size=8)
    checkpoints = path.parent / "runs" / "tiny" / "checkpoints"
    (checkpoints / "step-00000004").mkdir(parents=True)
    (checkpoints / "step-00000004" / "trainer_state.json").write_text(json.dumps({"processes": 1, "batch_size": 4}))
    (checkpoints / "step-00000006.tmp").mkdir()  # a half-written checkpoint: cleaned only by a run that goes ahead
    message = refused(run_engine, path, "--resume")
    assert "training.batch_size 4" in message and "this run has 1 with 8" in message


def test_a_locked_output_dir_is_refused(task, run_engine):
    path = task()
    folder = path.parent / "runs" / "tiny"
    lock = claim_output_dir(folder, overwrite=False, resume=False)  # another run, in progress
    try:
        message = refused(run_engine, path, "--overwrite")
    finally:
        lock.release()
    assert "is in use by another run" in message and f"pid {os.getpid()}" in message


def test_a_run_that_fails_on_its_data_leaves_no_folder_behind(task, run_engine):
    path = task()
    (path.parent / "train.tsv").write_text("text\tlabel\nonly one column here\n")
    result = run_engine("run", path)
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert not (path.parent / "runs").exists()


def test_a_resume_with_an_edited_task_file_names_what_differs(task, run_engine):
    path = task()
    assert run_engine("run", path).exit_code == 0
    message = refused(run_engine, path, "--resume", "--set", "optimizer.lr=5e-3", "--set", "head.dropout=0.3")
    flat = " ".join(message.split())
    assert "optimizer.lr: 0.0001 in the run, 0.005 now" in flat and "head.dropout: 0.1 in the run, 0.3 now" in flat
    assert "training.epochs" in flat  # what a resume may change


def test_a_resume_may_train_longer(task, run_engine):
    path = task()
    assert run_engine("run", path).exit_code == 0
    result = run_engine("run", path, "--resume", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.stderr
    assert "training.epochs 1 -> 2" in result.stderr
    history = (path.parent / "runs" / "tiny" / "history.jsonl").read_text().splitlines()
    assert [json.loads(h)["epoch"] for h in history if json.loads(h)["event"] == "evaluate"] == [1, 2]


def test_a_run_saved_with_an_older_default_resumes_with_it(task, run_engine):
    """A run trained before a default changed (optimizer.layer_decay was null in 0.2) resumes as it was trained:
    the same task file is no change to refuse or announce, and task.json keeps the run's value."""
    path = task()
    assert run_engine("run", path, "--set", "optimizer.layer_decay=null").exit_code == 0  # trained as 0.2 did
    saved = path.parent / "runs" / "tiny" / "task.json"
    assert json.loads(saved.read_text())["optimizer"]["layer_decay"] is None  # what 0.2's task.json holds
    result = run_engine("run", path, "--resume", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.stderr
    assert "layer_decay" not in result.stderr
    assert json.loads(saved.read_text())["optimizer"]["layer_decay"] is None
    message = refused(run_engine, path, "--resume", "--set", "training.epochs=3", "--set", "optimizer.layer_decay=0.9")
    assert "optimizer.layer_decay: null in the run, 0.9 now" in " ".join(message.split())
