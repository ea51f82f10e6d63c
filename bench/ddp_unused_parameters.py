"""What DDP's unused-parameter detection costs, measured where a run works without it, in one run.

Two CPU processes (torchrun, gloo, one thread each) fine-tune the packaged all-MiniLM-L6-v2 on an SST-2 sample with
the `linear` head reading the encoder's pooler and nothing frozen: the one configuration in which every trainable
parameter takes part in every step, so `training.find_unused_parameters` may be off. Runs alternate on/off for
several rounds; samples/s is the training loop's (from each run's manifest, evaluation excluded). Then the same
two processes try the `mlp` head (which leaves the pooler unused) with the detection off, to record that it fails
without it. Writes bench/results/ddp_unused_parameters.md.

    python bench/ddp_unused_parameters.py [--data-dir ../shared/data] [--train 640] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sst2_sample import DEFAULT_DATA, sample, write_tsv

RESULTS = Path(__file__).resolve().parent / "results" / "ddp_unused_parameters.md"


def launch(task: Path, *overrides: str) -> tuple[int, float, str]:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "engine", "run", str(task), "--overwrite", *(x for o in overrides for x in ("--set", o))]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    return result.returncode, time.perf_counter() - start, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ddp-unused-"))
    train, test = sample(args.data_dir, args.train, 64, seed=13)
    write_tsv(train, work / "train.tsv")
    write_tsv(test, work / "validation.tsv")
    task = work / "task.json"
    task.write_text(json.dumps({
        "task": "classification",
        "data": {"train": "train.tsv", "validation": "validation.tsv", "text": "sentence", "label": "label"},
        "head": {"name": "linear", "pooling": "pooler"}, "freeze": "none",
        "training": {"epochs": 1, "batch_size": 16, "seed": 13, "threads": 1}, "output_dir": "run",
    }))

    speeds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for on in (False, True):
            code, _, err = launch(task, f"training.find_unused_parameters={json.dumps(on)}")
            assert code == 0, err[-3000:]
            manifest = json.loads((work / "run" / "manifest.json").read_text())
            speeds[on].append(manifest["training_time"]["samples_per_second"])
            print(f"find_unused_parameters={on}: {speeds[on][-1]} samples/s", flush=True)

    code, _, err = launch(task, "training.find_unused_parameters=false", 'head={"name": "mlp"}')
    crash = "finished reduction" in err or "were not used in producing loss" in err

    off, on = statistics.median(speeds[False]), statistics.median(speeds[True])
    expected = "fails with DDP's \"parameters that were not used in producing loss\" error, as expected"
    outcome = expected if crash and code else f"exit code {code} (expected a failure)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(f"""# DDP unused-parameter detection: cost

`python bench/ddp_unused_parameters.py --train {args.train} --rounds {args.rounds}` on {date.today()}, {platform.processor() or platform.machine()},
{os.cpu_count()} CPUs, load average {load:.1f} at the end. Two processes (torchrun, gloo, 1 thread each), all-MiniLM-L6-v2,
{args.train} SST-2 sentences, batch 16 per process, 1 epoch, `linear` head on the pooler, nothing frozen.
Training-loop samples/s (evaluation excluded), medians of {args.rounds} alternated runs:

| find_unused_parameters | samples/s (runs) | median |
|---|---|---|
| false | {', '.join(map(str, speeds[False]))} | {off:.1f} |
| true (the default) | {', '.join(map(str, speeds[True]))} | {on:.1f} |

Ratio on/off: **{on / off:.3f}x**.

The `mlp` head (the pooler unused) with detection off: {outcome}.
""")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
