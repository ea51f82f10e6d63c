"""What a run says before and while it trains: the plan, a time estimate, --dry-run, and progress as plain lines
when the output is a log rather than a terminal."""

import json
import re

from engine import console as engine_console
from engine.console import LineProgress


def test_a_dry_run_prints_the_plan_times_one_batch_and_writes_nothing(tiny_task, run_engine):
    path = tiny_task(rows=64, training={"epochs": 3, "batch_size": 8}, freeze="backbone")
    result = run_engine("run", path, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert not (path.parent / "runs").exists()
    err = " ".join(result.stderr.split())
    total, trainable = (int(n.replace(",", "")) for n in
                        re.search(r"model \S+: ([\d,]+) parameters, ([\d,]+) trainable", err).groups())
    assert trainable == 32 * 2 + 2  # backbone frozen: the linear head alone (hidden 32, two labels)
    assert total > 10 * trainable
    assert "data train 64 rows, validation 32 rows" in err
    assert "training 24 steps (8 per epoch, 3 epoch(s)), batch 8 x 1 process(es)" in err
    assert re.search(r"device cpu, fp32, \d+ thread", err)
    assert re.search(r"Dry run: one batch forward and backward in [\d.]+ s", err)


def test_a_dry_run_warns_about_what_would_stop_the_run(tiny_task, run_engine):
    path = tiny_task()
    assert run_engine("run", path).exit_code == 0
    result = run_engine("run", path, "--dry-run")
    assert result.exit_code == 0
    assert "engine run without --dry-run would stop: output directory" in " ".join(result.stderr.split())


def test_a_run_prints_its_plan_and_an_estimate_after_its_first_steps(tiny_task, run_engine):
    path = tiny_task(rows=96, training={"epochs": 2, "batch_size": 8})  # 24 steps
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    assert "Plan" in result.stderr
    assert re.search(r"Estimated training time left: \d+ s \([\d.]+ s a step over the first 10\)", result.stderr)


def test_without_a_terminal_progress_is_plain_lines(tiny_task, run_engine, monkeypatch):
    monkeypatch.setenv("ENGINE_PROGRESS_SECONDS", "0")
    path = tiny_task(rows=32, training={"epochs": 1, "batch_size": 8})
    result = run_engine("run", path)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(line.strip() for line in lines), "a blank line in the log"
    assert "\x1b" not in result.stderr and "\r" not in result.stderr  # no terminal control
    progress = [line for line in lines if line.startswith("epoch 1/1: ")]
    assert progress and progress[-1].startswith("epoch 1/1: 32/32 rows")
    assert [int(re.match(r"epoch 1/1: (\d+)/", line)[1]) for line in progress] == sorted(
        int(re.match(r"epoch 1/1: (\d+)/", line)[1]) for line in progress)
    assert any(re.search(r"rows/s, eta \d+ s, loss [\d.]+$", line) for line in progress)
    metrics = json.loads((path.parent / "runs/tiny/metrics.json").read_text())
    assert "accuracy" in metrics["validation"]


def test_line_progress_prints_every_interval_and_the_end_once(capsys, monkeypatch):
    monkeypatch.setattr(engine_console.console, "quiet", False)
    with LineProgress(every=3600) as bar:  # an hour: nothing in between, one line at the end
        job = bar.add_task("train", total=10, unit="rows", postfix="loss 0.5")
        for _ in range(10):
            bar.advance(job, 1)
    [line] = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"train: 10/10 rows, [\d,.]+ rows/s, loss 0\.5", line)

    with LineProgress(every=0) as bar:  # every update, and the end not again
        job = bar.add_task("evaluate", total=3, unit="rows", postfix="")
        for _ in range(3):
            bar.advance(job, 1)
    assert [line.split(",")[0] for line in capsys.readouterr().err.splitlines()] == [
        "evaluate: 1/3 rows", "evaluate: 2/3 rows", "evaluate: 3/3 rows"]

    with LineProgress(every=3600, transient=True) as bar:  # a transient bar leaves no line
        bar.advance(bar.add_task("predict", total=2, unit="rows", postfix=""), 2)
    assert capsys.readouterr().err == ""


def test_a_small_training_set_trains_at_least_min_steps_in_whole_epochs(tiny_task, run_engine):
    path = tiny_task(rows=64, training={"batch_size": 8, "min_steps": 36})  # 8 steps an epoch: 5 epochs, not 3
    result = run_engine("run", path, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "training 40 steps (8 per epoch, 5 epoch(s), not 3: training.min_steps is 36)" in " ".join(result.stderr.split())


def test_max_steps_outranks_the_floor(tiny_task, run_engine):
    path = tiny_task(rows=64, training={"batch_size": 8, "min_steps": 36, "max_steps": 12})
    result = run_engine("run", path, "--dry-run")
    assert "training 12 steps (8 per epoch, 2 epoch(s))" in " ".join(result.stderr.split())


def test_the_floor_is_the_defaults_and_yields_to_an_epoch_count_the_task_file_writes():
    from engine.config.sections import TrainingConfig

    default = TrainingConfig.model_fields["min_steps"].default
    assert default > 0 and TrainingConfig().min_steps == default
    assert TrainingConfig(epochs=2).min_steps == 0  # the user's epochs are kept
    assert TrainingConfig(max_steps=7).min_steps == 0
    assert TrainingConfig(epochs=2, min_steps=50).min_steps == 50  # both written: the floor holds
    recorded = TrainingConfig().model_dump()  # the resolved task file records the floor in force
    assert TrainingConfig.model_validate(recorded).min_steps == default
    assert TrainingConfig.model_validate(TrainingConfig(epochs=2).model_dump()).min_steps == 0
    assert TrainingConfig(epochs=3).planned_epochs(10) == 3
    assert TrainingConfig(min_steps=25).planned_epochs(10) == 3 and TrainingConfig(min_steps=31).planned_epochs(10) == 4


def test_a_run_saved_before_the_floor_resumes_as_it_planned():
    from engine.config.resume import as_planned, changed_keys
    from engine.config.sections import TrainingConfig

    old_run = {"training": {k: v for k, v in TrainingConfig(epochs=3).model_dump().items() if k != "min_steps"}}
    now = TrainingConfig()  # the same task file today: the default floor would add epochs to a small set
    assert now.min_steps > 0
    kept = as_planned(old_run, now)
    assert kept.min_steps == 0 and kept.epochs == 3
    assert changed_keys(old_run, {"training": kept.model_dump()}) == ([], [])  # nothing to announce or refuse
    asked = TrainingConfig(min_steps=40)  # the task file now writes the floor itself: it holds, and is a change
    assert as_planned(old_run, asked).min_steps == 40
    assert changed_keys(old_run, {"training": asked.model_dump()}) == (["training.min_steps"], [])
    new_run = {"training": now.model_dump()}  # a run saved with the floor keeps it
    assert as_planned(new_run, now).min_steps == now.min_steps
