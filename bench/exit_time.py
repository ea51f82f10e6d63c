"""How long a process spends ending: engine's exit (engine.cli.shutdown) against Python's own, in whole processes.

Two pairs, alternated over ``--repeats`` rounds:

- the imports every contender of bench/speed_vs_peers.py pays (torch, transformers' BERT, datasets, matplotlib),
  then Python's exit against ``engine.cli.shutdown.exit_process``;
- ``engine run --dry-run`` on examples/sentiment (loads the data and the packaged model, one batch forward and
  backward), ended by Python's exit (``ENGINE_FAST_EXIT=0``) against engine's.

Each process notes the time when its last ``atexit`` handler runs (registered first, so it runs last: both exits
run their handlers before the part that differs); "ending" is from then until the parent sees the process gone.
That isolates the exit from the imports' noise. Whole-process times are given too. Medians.

    python bench/exit_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = ("import atexit, os, time\n"
         "atexit.register(lambda: open(os.environ['BENCH_STAMP'], 'w').write(repr(time.time())))\n")
IMPORTS = STAMP + "import torch, transformers, datasets, matplotlib.figure\nfrom transformers import BertModel\n"
DRY_RUN = STAMP + "import sys\nfrom engine.cli import command\nsys.argv = ['engine', 'run', 'task.json', '--dry-run']\n"
CONTENDERS = {
    "imports, Python's exit": (IMPORTS, {"ENGINE_FAST_EXIT": "0"}),
    "imports, engine's exit": (IMPORTS + "from engine.cli.shutdown import exit_process\nexit_process(0)\n", {}),
    "engine run --dry-run, Python's exit": (DRY_RUN + "command()\n", {"ENGINE_FAST_EXIT": "0"}),
    "engine run --dry-run, engine's exit": (DRY_RUN + "command()\n", {}),
}


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(whole process, ending) in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Path(tmp) / "stamp"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT / "examples" / "sentiment",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_STAMP": str(stamp), **env})
        end, wall = time.time(), time.perf_counter() - start
        return wall, end - float(stamp.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "exit_time.md")
    args = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
    for round_ in range(args.repeats):
        for name, (code, env) in CONTENDERS.items():
            times[name].append(timed(code, env))
            wall, ending = times[name][-1]
            print(f"round {round_ + 1} {name}: {wall:.2f} s, ending {ending:.2f} s", flush=True)

    def med(name: str, which: int) -> float:
        return statistics.median(t[which] for t in times[name])

    names = list(CONTENDERS)
    lines = [
        "# Ending a process: engine's exit against Python's",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs. Command: "
        f"`python bench/exit_time.py --repeats {args.repeats}`. Whole processes, alternated, medians. 'Ending' is "
        "from the last atexit handler to the process being gone (both exits run the handlers first).",
        "",
        "| process | ending, Python's exit, s | ending, engine's exit, s | whole process, Python's exit, s | "
        "whole process, engine's exit, s |",
        "|---|---|---|---|---|",
    ]
    for slow, fast in zip(names[::2], names[1::2], strict=True):
        lines.append(f"| {slow.rsplit(',', 1)[0]} | {med(slow, 1):.2f} | {med(fast, 1):.2f} | {med(slow, 0):.2f} | "
                     f"{med(fast, 0):.2f} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
