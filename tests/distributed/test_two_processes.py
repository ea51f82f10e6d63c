"""The same loop with two processes (torchrun, gloo on the CPU: the code path `accelerate launch` takes on GPUs):
training batches split between processes, no sample dropped or counted twice in evaluation, files written once."""

import json
import random


def test_two_processes(write_task, tiny_model_dir, torchrun):
    rng = random.Random(0)
    rows = "".join(f"the film was {rng.choice(['good', 'great'] if i % 2 else ['bad', 'awful'])}\t{'pos' if i % 2 else 'neg'}\n"
                   for i in range(53))
    path = write_task(
        {"task": "classification", "model": {"name": str(tiny_model_dir)},
         "data": {"train": "train.tsv", "validation": "dev.tsv"}, "training": {"epochs": 2, "batch_size": 4},
         "output_dir": "run"},
        {"train.tsv": "text\tlabel\n" + rows, "dev.tsv": "text\tlabel\n" + "".join(rows.splitlines(keepends=True)[:13])},
    )
    result = torchrun("-m", "engine", "run", path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = path.parent / "run"
    accuracy = json.loads((run_dir / "metrics.json").read_text())["validation"]["accuracy"]
    assert abs(accuracy * 13 - round(accuracy * 13)) < 1e-9  # a share of the 13 validation rows, not of 14 or 16
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"] == 2 * 7  # 53 rows, 4 per batch per process, 2 processes: 7 steps an epoch
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history if h["event"] == "evaluate"] == [1, 2]  # written by one process only
    assert result.stdout.count("Metrics") == 1
