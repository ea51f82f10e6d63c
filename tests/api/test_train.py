"""``engine.train``: the path, checks, messages and run directory of `engine run`, from a task file or a dict, with
overrides; usable again in the same process; errors raised as ``EngineError``, never ``SystemExit``."""

from __future__ import annotations

import json
import os

import pytest

import engine
from engine.errors import ConfigError, RunDirError
from engine.testing import labelled_rows, tsv


def task(model_dir, **changes):
    return {"task": "classification", "model": {"name": str(model_dir)},
            "data": {"train": "train.tsv", "validation": "dev.tsv"},
            "training": {"epochs": 1, "batch_size": 8, "seed": 5}, "metrics": ["accuracy"], "output_dir": "run",
            **changes}


@pytest.fixture
def data_files():
    labels = ["bad", "good"]
    return {"train.tsv": tsv(labelled_rows(labels, 24, 1)), "dev.tsv": tsv(labelled_rows(labels, 10, 2))}


def test_train_twice_in_one_process_gives_the_run_engine_run_gives(tiny_model_dir, write_task, data_files,
                                                                    run_engine):
    path = write_task(task(tiny_model_dir), data_files)
    first = engine.train(path)
    assert first.run_dir == path.parent / "run"
    assert json.loads((first.run_dir / "metrics.json").read_text()) == first.metrics
    assert (first.run_dir / "model" / "engine.json").is_file()

    again = engine.train(path, {"training.epochs": 1}, output_dir=path.parent / "again")
    assert again.run_dir == path.parent / "again" and again.metrics == first.metrics

    assert run_engine("run", path, "--set", "output_dir=cli").exit_code == 0
    cli = json.loads((path.parent / "cli" / "metrics.json").read_text())
    assert cli["validation"] == pytest.approx(first.metrics["validation"])
    resolved = json.loads((first.run_dir / "task.json").read_text())
    assert resolved == {**json.loads((path.parent / "cli" / "task.json").read_text()),
                        "output_dir": resolved["output_dir"]}


def test_train_takes_a_dict_relative_to_the_current_directory_and_overrides_as_set_takes_them(
        tiny_model_dir, write_task, data_files, monkeypatch, tmp_path):
    write_task(task(tiny_model_dir), data_files)
    monkeypatch.chdir(tmp_path)
    result = engine.train(task(tiny_model_dir, output_dir="from-dict"), ["training.batch_size=4"])
    assert result.run_dir == tmp_path / "from-dict"
    assert json.loads((result.run_dir / "task.json").read_text())["training"]["batch_size"] == 4
    with pytest.raises(RunDirError) as info:  # what engine run says of a finished run in the way
        engine.train(task(tiny_model_dir, output_dir="from-dict"))
    assert "--overwrite" in str(info.value)
    again = engine.train(task(tiny_model_dir, output_dir="from-dict"), {"training.batch_size": 4}, overwrite=True)
    assert again.metrics == result.metrics


def test_a_bad_task_is_a_config_error_with_the_message_of_engine_run(tiny_model_dir, write_task, data_files,
                                                                       run_engine):
    path = write_task(task(tiny_model_dir, training={"epochs": 0, "batch_sise": 8}), data_files)
    with pytest.raises(ConfigError) as info:
        engine.train(path)
    printed = run_engine("run", path)
    assert printed.exit_code == info.value.exit_code == 2
    assert [issue.path for issue in info.value.issues] == ["training.epochs", "training.batch_sise"]
    for issue in info.value.issues:
        assert issue.message.split(";")[0] in " ".join(printed.stderr.split())
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("arguments", "message"), [
    (("missing.json",), "task file not found"),
    ((42,), "expected a task file's path or a task as a dict, got int"),
    (({"data": {"train": "t.tsv"}},), "task: missing: which task?"),
    (({"task": "classification", "data": {"train": "t.tsv"}}, ["no-equals-sign"]), "--set expects KEY=VALUE"),
])
def test_bad_arguments_raise_engine_errors_not_system_exit(arguments, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(engine.EngineError) as info:
        engine.train(*arguments)
    assert message in str(info.value)
    assert not os.listdir(tmp_path)  # nothing written
