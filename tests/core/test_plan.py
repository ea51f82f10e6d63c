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
    assert ("optimizer adamw: lr 0.0001, each layer below the top at 0.9 times the one above: the classification "
            "task's default, from the defaults study (docs/benchmarks.md)") in err
    assert re.search(r"Dry run: one batch forward and backward in [\d.]+ s", err)
    written = run_engine("run", tiny_task(optimizer={"lr": 2e-4, "head_lr": 1e-3, "layer_decay": 0.8}), "--dry-run")
    assert ("optimizer adamw: lr 0.0002, head 0.001, each layer below the top at 0.8 times the one above "
            "device") in " ".join(written.stderr.split())


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


def _resolved(**sections):
    from engine.api.plugins import plugin_manager
    from engine.config.resolve import resolve

    return resolve({"task": "classification", "data": {"train": "train.tsv"}, **sections}, plugin_manager().registry())


def test_a_run_saved_before_the_floor_resumes_as_it_planned():
    from engine.config.resume import as_planned, changed_keys

    saved = _resolved(training={"epochs": 3}).to_dict()
    del saved["training"]["min_steps"]  # 0.2's task.json: no floor of steps
    now = _resolved()  # the same task file today: the default floor would add epochs to a small set
    assert now.training.min_steps > 0
    as_planned(saved, now)
    assert now.training.min_steps == 0 and now.training.epochs == 3
    assert changed_keys(saved, now.to_dict()) == ([], [])  # nothing to announce or refuse
    asked = _resolved(training={"min_steps": 40})  # the task file now writes the floor itself: it holds, a change
    as_planned(saved, asked)
    assert asked.training.min_steps == 40
    assert changed_keys(saved, asked.to_dict()) == (["training.min_steps"], [])
    new_run = _resolved().to_dict()  # a run saved with the floor keeps it
    again = _resolved()
    as_planned(new_run, again)
    assert again.training.min_steps == new_run["training"]["min_steps"]


def test_a_run_saved_with_an_older_default_resumes_with_it():
    """Every default that changed since 0.2 (CHANGED_DEFAULTS) keeps, on resume, the value the run was saved with,
    unless the task file writes it: a resumed run's optimizer is the one its checkpoint was trained with."""
    from engine.config.resume import CHANGED_DEFAULTS, as_planned, changed_keys

    assert set(CHANGED_DEFAULTS) >= {"training.min_steps", "optimizer.layer_decay"}
    saved = _resolved().to_dict()
    for dotted, old in CHANGED_DEFAULTS.items():  # a run as 0.2 planned it
        section, key = dotted.split(".")
        saved[section][key] = old
    now = _resolved()
    assert now.optimizer.options.layer_decay != saved["optimizer"]["layer_decay"]  # today's defaults differ
    as_planned(saved, now)
    assert now.optimizer.options.layer_decay is None and now.training.min_steps == 0
    assert changed_keys(saved, now.to_dict()) == ([], [])  # --resume neither refuses nor announces a change
    written = _resolved(optimizer={"layer_decay": 0.8})  # written in the task file: a change, refused by resume
    as_planned(saved, written)
    assert written.optimizer.options.layer_decay == 0.8
    assert changed_keys(saved, written.to_dict())[1] == ["optimizer.layer_decay"]
    saved["optimizer"]["layer_decay"] = 0.7
    other = _resolved(optimizer={"name": "sgd"})  # another optimizer than the run's: left alone (refused anyway)
    as_planned(saved, other)
    assert other.optimizer.name == "sgd" and other.optimizer.options.layer_decay is None


def test_a_resume_that_writes_epochs_trains_that_many_whatever_floor_the_run_had():
    """Writing epochs turns the floor off (the file says how long); a resume that does so is no exception."""
    from engine.config.resume import as_planned

    saved = _resolved().to_dict()  # trained with the default floor
    assert saved["training"]["min_steps"] > 0
    longer = _resolved(training={"epochs": 5})
    as_planned(saved, longer)
    assert longer.training.min_steps == 0 and longer.training.epochs == 5
