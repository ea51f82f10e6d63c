"""Issue 27's hostile-but-realistic inputs, each reproduced as the user met it: one clear message (or the right
behaviour), exit status non-zero where refused, no traceback, nothing lost."""

import json


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
