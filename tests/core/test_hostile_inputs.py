"""Issue 27's hostile-but-realistic inputs, each reproduced as the user met it: one clear message (or the right
behaviour), exit status non-zero where refused, no traceback, nothing lost."""

import json

import pytest


def test_compare_refuses_a_folder_that_only_holds_a_task_file(tmp_path, run_engine):
    for name in ("mine", "theirs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "task.json").write_text(json.dumps({"task": "classification", "data": {}}))
        (tmp_path / name / "train.tsv").write_text("text\tlabel\n")
    result = run_engine("compare", tmp_path / "mine", tmp_path / "theirs", "--output", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'mine'}: not a run directory" in result.stderr and "manifest.json" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_gzipped_training_file_needs_no_format(write_task, tiny_model_dir, run_engine):
    import gzip

    from engine.testing import labelled_rows, tsv

    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv.gz", "validation_split": 0.25}, "training": {"epochs": 1}})
    with gzip.open(path.parent / "train.tsv.gz", "wt", encoding="utf-8") as f:
        f.write(tsv(labelled_rows(["neg", "pos"], 32, seed=1)))
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    assert "train 24 rows" in " ".join(result.stderr.split())


def snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def trained(write_task, tiny_model_dir, run_engine):
    from engine.testing import labelled_rows, tsv

    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"}, "training": {"epochs": 1},
                       "output_dir": "runs/tiny"},
                      {"train.tsv": tsv(labelled_rows(["neg", "pos"], 32, seed=1)),
                       "dev.tsv": tsv(labelled_rows(["neg", "pos"], 8, seed=2))})
    assert run_engine("run", path).exit_code == 0
    return path


@pytest.mark.parametrize("command", [
    ["predict", "runs/tiny", "--input", "dev.tsv", "--output", "dev.tsv"],
    ["predict", "runs/tiny", "--input", "dev.tsv", "--output", "./sub/../dev.tsv"],
    ["evaluate", "runs/tiny", "--data", "dev.tsv", "--output", "runs/tiny/metrics.json"],
    ["predict", "runs/tiny", "--input", "dev.tsv", "--output", "runs/tiny/model/engine.json"],
    ["init", "train.tsv", "--output", "train.tsv", "--force"],
    ["compare", "runs/tiny", "runs/tiny", "--output", "runs/tiny/report"],
])
def test_no_command_writes_onto_its_own_input(command, trained, run_engine, monkeypatch):
    root = trained.parent
    (root / "sub").mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    before = snapshot(root)
    result = run_engine(*command)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "nothing was written" in result.stderr
    assert snapshot(root) == before


def test_overwrite_never_deletes_the_data_it_trains_on(trained, run_engine):
    root = trained.parent
    (root / "runs" / "tiny" / "train.tsv").write_text((root / "train.tsv").read_text())
    task = json.loads(trained.read_text())
    task["data"]["train"] = "runs/tiny/train.tsv"
    trained.write_text(json.dumps(task))
    before = snapshot(root)
    result = run_engine("run", trained, "--overwrite")
    assert result.exit_code == 1 and "--overwrite would delete" in result.stderr
    assert snapshot(root) == before
