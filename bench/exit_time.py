"""How long a process spends ending: engine's exit (engine.shutdown) against Python's own, in whole processes.

Two pairs, alternated over ``--repeats`` rounds, medians and the ratio within each round:

- the imports every contender of bench/speed_vs_peers.py pays (torch, transformers' BERT, datasets, matplotlib),
  then Python's exit against ``engine.shutdown.exit_process``;
- ``engine run --dry-run`` on examples/sentiment (loads the data and the packaged model, one batch forward and
  backward) with ``ENGINE_FAST_EXIT=0`` against the default.

    python bench/exit_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = "import torch, transformers, datasets, matplotlib.figure\nfrom transformers import BertModel\n"
CONTENDERS = {
    "imports, Python's exit": ([sys.executable, "-c", IMPORTS], {"ENGINE_FAST_EXIT": "0"}),
    "imports, engine's exit": (
        [sys.executable, "-c", IMPORTS + "from engine.shutdown import exit_process\nexit_process(0)\n"],
        {},
    ),
    "engine run --dry-run, Python's exit": (
        [sys.executable, "-m", "engine", "run", "task.json", "--dry-run"],
        {"ENGINE_FAST_EXIT": "0"},
    ),
    "engine run --dry-run, engine's exit": ([sys.executable, "-m", "engine", "run", "task.json", "--dry-run"], {}),
}


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        cwd=ROOT / "examples" / "sentiment",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "exit_time.md")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_ in range(args.repeats):
        for name, (command, env) in CONTENDERS.items():
            times[name].append(timed(command, env))
            print(f"round {round_ + 1} {name}: {times[name][-1]:.2f} s", flush=True)

    names = list(CONTENDERS)
    lines = [
        "# Ending a process: engine's exit against Python's",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs. Command: "
        f"`python bench/exit_time.py --repeats {args.repeats}`. Whole processes, alternated, medians; the saving is "
        "the median of the differences within each round.",
        "",
        "| process | Python's exit, s | engine's exit, s | saved, s | ratio |",
        "|---|---|---|---|---|",
    ]
    for slow, fast in zip(names[::2], names[1::2], strict=True):
        saved = statistics.median(s - f for s, f in zip(times[slow], times[fast], strict=True))
        ratio = statistics.median(s / f for s, f in zip(times[slow], times[fast], strict=True))
        what = slow.rsplit(",", 1)[0]
        lines.append(
            f"| {what} | {statistics.median(times[slow]):.2f} | {statistics.median(times[fast]):.2f} | "
            f"{saved:.2f} | {ratio:.2f}x |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
