"""data.streaming: training on a file read as it trains, in flat memory, however large the file."""

import json
import random

import pytest

from engine.data import cache
from engine.testing import engine_process

MEMORY_LOG = """
import json, os
from engine import Callback, hookimpl


class Memory(Callback):
    def __init__(self, options):
        self.path = os.environ["MEMORY_LOG"]

    def on_step_end(self, state, logs):
        if state.global_step in (10, 50, 100):
            rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            # VmHWM is this address space's peak. Not ru_maxrss: Linux carries that over exec from the process that
            # spawned this one (under pytest, the whole test session's peak).
            status = dict(line.split(":", 1) for line in open("/proc/self/status"))
            peak = int(status["VmHWM"].split()[0]) * 1024
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": state.global_step, "rss": rss, "peak": peak}) + "\\n")


@hookimpl
def callback(register):
    register("memory", Memory)
"""

LIMIT = 800 * 2**20  # the memory this test allows the whole run; the file is larger


def stream_task(write_task, tiny_model_dir, rows, **data):
    return write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "streaming": True, **data},
                       "training": {"max_steps": 5, "batch_size": 8}, "output_dir": "run"},
                      {"train.tsv": "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows)})


def test_a_stream_needs_max_steps_and_validate_says_so(write_task, tiny_model_dir, run_engine):
    path = stream_task(write_task, tiny_model_dir, [("a b", "x"), ("c d", "y")])
    result = run_engine("validate", path, "--set", "training.max_steps=null")  # before any model or data loads
    assert result.exit_code == 2
    assert "training.max_steps: missing: a streamed training split (data.streaming) has no known length" in result.stderr


def test_a_label_the_fitted_rows_did_not_have_stops_the_run_at_its_line(write_task, tiny_model_dir, run_engine):
    rows = [(f"text {i}", "xy"[i % 2]) for i in range(60)] + [("late", "z")]
    path = stream_task(write_task, tiny_model_dir, rows, fit_rows=20)
    result = run_engine("run", path, "--set", "training.max_steps=50")
    assert result.exit_code == 1
    assert f"{path.parent / 'train.tsv'}, line 62: unknown label 'z'; expected one of: x, y" in result.stderr


@pytest.mark.slow
def test_a_file_larger_than_the_memory_limit_trains_100_steps_in_flat_memory(write_task, tiny_model_dir, tmp_path):
    rng = random.Random(0)
    words = ["the", "a", "film", "movie", "story", "great", "terrible", "boring", "funny", "slow"]
    block = "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 20))) + "\t" + rng.choice(["pos", "neg"])
                    + "\n" for _ in range(10_000))
    path = stream_task(write_task, tiny_model_dir, [], fit_rows=1000)
    with (path.parent / "train.tsv").open("a", encoding="utf-8") as f:
        while f.tell() <= LIMIT + 2**25:
            f.write(block)
    assert (path.parent / "train.tsv").stat().st_size > LIMIT
    (path.parent / "memlog.py").write_text(MEMORY_LOG)
    # A process of its own: the peak is the run's, not that of the tests this pytest process ran before.
    result = engine_process("run", path, "--set", "training.max_steps=100", "--set", 'plugins=["memlog"]',
                            "--set", 'callbacks=["memory"]', cwd=path.parent,
                            env={"MEMORY_LOG": str(tmp_path / "memory.jsonl")})
    assert result.returncode == 0, result.stderr
    samples = [json.loads(line) for line in (tmp_path / "memory.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [10, 50, 100]
    # The whole process (imports, model, reading) stays under the limit, and from step 10 to step 100 its memory
    # does not grow.
    assert samples[-1]["peak"] < LIMIT
    assert samples[-1]["rss"] - samples[0]["rss"] < 32 * 2**20
    assert json.loads((path.parent / "run" / "manifest.json").read_text())["steps"] == 100
    # The stream was read, not copied: nothing in the data cache comes from the training file.
    assert not [e for e in cache.entries() if e.info.get("source") == str(path.parent / "train.tsv")]
