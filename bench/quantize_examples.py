"""What `--quantize int8` changes on the bundled examples: each example (sentiment, ner, regression) is trained
once with its own task file, then scored on its validation file by `engine evaluate`, in fp32 and with `--quantize
int8`, alternated over the rounds: every metric in both, its change, and the whole-process time of each.
Writes bench/results/quantize_examples.md.

    python bench/quantize_examples.py [--rounds 3] [--work DIR]

With --work, a folder that already holds an example's trained run is reused (delete it to train again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("sentiment", "ner", "regression")


def engine(*args: str, cwd: Path) -> float:
    """Run the engine command; its wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode:
        raise SystemExit(f"engine {' '.join(args)} failed in {cwd}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def trained(work: Path, name: str) -> tuple[Path, Path, Path]:
    """(the example's folder, its run directory, its validation file), trained if it is not there yet."""
    folder = work / name
    if not folder.is_dir():
        shutil.copytree(ROOT / "examples" / name, folder)
    task = json.loads((folder / "task.json").read_text())
    run_dir = folder / task["output_dir"]
    if not (run_dir / "model" / "engine.json").is_file():
        print(f"training {name} ...", flush=True)
        engine("run", "task.json", "--overwrite", cwd=folder)
    return folder, run_dir, folder / task["data"]["validation"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the examples are copied and trained (default: a temporary "
                                                  "folder)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "quantize_examples.md")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="quantize-"))
    work.mkdir(parents=True, exist_ok=True)

    lines = ["# `--quantize int8` on the bundled examples", "",
             f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch's default threads. Command: "
             f"`python bench/quantize_examples.py --rounds {args.rounds}`", "",
             "Each example trained once with its own task.json (the packaged all-MiniLM-L6-v2), then `engine "
             "evaluate RUN_DIR --data VALIDATION` in fp32 and with `--quantize int8`, alternated; metrics are the "
             "same every round (both are deterministic), times are whole processes, medians.", ""]
    for name in EXAMPLES:
        folder, run_dir, validation = trained(work, name)
        metrics: dict[str, dict[str, float]] = {}
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(args.rounds):
            for mode, flags in (("fp32", []), ("int8", ["--quantize", "int8"])):
                out = folder / f"metrics-{mode}.json"
                times[mode].append(engine("evaluate", str(run_dir), "--data", str(validation), "--output", str(out),
                                          *flags, cwd=folder))
                metrics[mode] = json.loads(out.read_text())
        speed = statistics.median(f / q for f, q in zip(times["fp32"], times["int8"]))
        start = len(lines)
        lines += [f"## {name} (examples/{name}/{validation.name})", "",
                  "| metric | fp32 | int8 | change |", "|---|---|---|---|"]
        for key in metrics["fp32"]:
            a, b = metrics["fp32"][key], metrics["int8"][key]
            lines.append(f"| {key} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
        lines += ["", f"Whole process: fp32 {statistics.median(times['fp32']):.1f} s, int8 "
                      f"{statistics.median(times['int8']):.1f} s; int8's speed-up {speed:.2f}x (per round: "
                      + " / ".join(f"{f / q:.2f}x" for f, q in zip(times["fp32"], times["int8"])) + ")", ""]
        print("\n".join(lines[start:]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
