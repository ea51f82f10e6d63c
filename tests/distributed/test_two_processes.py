"""The same loop with two processes (torchrun, gloo on the CPU: the code path `accelerate launch` takes on GPUs):
training batches split between processes, no sample dropped or counted twice in evaluation, files written once."""

import json
import random

STATE_LOG = """
import json, os
from engine import Callback, hookimpl


class StateLog(Callback):
    def __init__(self, options):
        pass

    def on_train_begin(self, state):
        with open(os.environ["STATE_LOG"], "a") as f:
            f.write(json.dumps({"rank": os.environ.get("RANK"), "steps_per_epoch": state.steps_per_epoch,
                                "epochs": state.epochs, "max_steps": state.max_steps}) + "\\n")


@hookimpl
def callback(register):
    register("state_log", StateLog)
"""


def test_two_processes(write_task, tiny_model_dir, torchrun, tmp_path):
    rng = random.Random(0)
    rows = "".join(f"the film was {rng.choice(['good', 'great'] if i % 2 else ['bad', 'awful'])}\t{'pos' if i % 2 else 'neg'}\n"
                   for i in range(53))
    path = write_task(
        {"task": "classification", "model": {"name": str(tiny_model_dir)},
         "data": {"train": "train.tsv", "validation": "dev.tsv"}, "training": {"epochs": 2, "batch_size": 4},
         "plugins": ["state_log"], "callbacks": ["state_log"], "output_dir": "run"},
        {"train.tsv": "text\tlabel\n" + rows, "dev.tsv": "text\tlabel\n" + "".join(rows.splitlines(keepends=True)[:13]),
         "state_log.py": STATE_LOG},
    )
    result = torchrun("-m", "engine", "run", path, env={"STATE_LOG": str(tmp_path / "state.jsonl")})
    assert result.returncode == 0, result.stderr[-3000:]
    # Each process sees the steps it takes (53 rows in global batches of 2 x 4: 7), not the batches of the whole
    # data at its own batch size (14).
    states = [json.loads(line) for line in (tmp_path / "state.jsonl").read_text().splitlines()]
    assert sorted(s["rank"] for s in states) == ["0", "1"]
    assert all((s["steps_per_epoch"], s["epochs"], s["max_steps"]) == (7, 2, 14) for s in states)
    run_dir = path.parent / "run"
    accuracy = json.loads((run_dir / "metrics.json").read_text())["validation"]["accuracy"]
    assert abs(accuracy * 13 - round(accuracy * 13)) < 1e-9  # a share of the 13 validation rows, not of 14 or 16
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 2 * 7  # 53 rows, 4 per batch per process, 2 processes: 7 steps an epoch
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1, 2]  # written by one process only
    assert result.stdout.count("Metrics") == 1


COUNTING_TASK = """
import os
from engine import hookimpl
from engine_builtins.classification import ClassificationOptions
from engine_builtins.classification.classifier import ClassificationTask


class Counting(ClassificationTask):
    def encode_batch(self, rows, tokenizer, max_length, labelled=True):
        with open(os.environ["ENCODE_LOG"], "a") as f:
            f.write(f"{os.environ.get('RANK', '-')} {len(rows['text'])}\\n")
        return super().encode_batch(rows, tokenizer, max_length, labelled)


@hookimpl
def task(register):
    register("counting", Counting, options=ClassificationOptions)
"""


def test_two_processes_tokenize_once_and_a_second_run_not_at_all(write_task, tiny_model_dir, torchrun, tmp_path):
    rows = "".join(f"the film number {i} was {'good' if i % 2 else 'bad'}\t{'pos' if i % 2 else 'neg'}\n" for i in range(3000))
    path = write_task({"task": "counting", "plugins": ["counting"], "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"},
                       "training": {"max_steps": 3, "batch_size": 4}, "output_dir": "run"},
                      {"train.tsv": "text\tlabel\n" + rows, "dev.tsv": "text\tlabel\n" + "".join(rows.splitlines(keepends=True)[:2000]),
                       "counting.py": COUNTING_TASK})
    log = tmp_path / "encoded.log"
    env = {"ENCODE_LOG": str(log), "ENGINE_CACHE": str(tmp_path / "cache")}
    result = torchrun("-m", "engine", "run", path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [line.split() for line in log.read_text().splitlines()]
    assert {rank for rank, _ in ranks} == {"0"}  # the main process tokenized; rank 1 read its cache
    encoded = sum(int(n) for _, n in ranks)
    assert 3000 + 2000 <= encoded <= 3000 + 2000 + 2 * 64  # each split once (and a sample of each to learn types)
    again = torchrun("-m", "engine", "run", path, "--overwrite", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum(int(line.split()[1]) for line in log.read_text().splitlines()) == encoded  # nothing tokenized again
    assert "features read from the cache" in again.stderr


def test_two_processes_train_on_a_stream(write_task, tiny_model_dir, torchrun):
    rows = "".join(f"the film was {'good' if i % 2 else 'bad'} {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "train.tsv", "streaming": True},
                       "training": {"max_steps": 8, "batch_size": 4}, "output_dir": "run"},
                      {"train.tsv": "text\tlabel\n" + rows})
    result = torchrun("-m", "engine", "run", path)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((path.parent / "run" / "manifest.json").read_text())
    assert manifest["steps"] == 8 and manifest["training_time"]["samples"] == 8 * 4 * 2  # passes over 40 rows


def test_a_data_error_under_two_processes_is_one_message_and_no_traceback(write_task, tiny_model_dir, torchrun):
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv"}, "training": {"max_steps": 2}, "output_dir": "run"},
                      {"train.tsv": "text\tlabel\nfine\tpos\nbroken line\nok\tneg\n"})
    result = torchrun("-m", "engine", "run", path)
    assert result.returncode != 0
    message = f"error: {path.parent / 'train.tsv'}, line 3: expected 2 fields separated by '\\t' (text, label), got 1"
    assert result.stderr.count(message) == 1
    assert "[rank0]: Traceback" not in result.stderr and "[rank1]: Traceback" not in result.stderr
