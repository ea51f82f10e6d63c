"""Data of any size: setup memory and time per row, this engine against an older one, at 100k, 1M and 2M rows.

Each run is a whole `engine run` process on a generated classification TSV (8-40 words per row, drawn from a
fixed vocabulary) with the packaged MiniLM and `training.max_steps=2`, so the time is almost all setup: reading,
tokenizing, batching. Peak memory is the largest sum of resident memory over the process and its children
(tokenizing workers), sampled every 50 ms from /proc (proportional set size, so pages a forked worker shares with its
parent count once). For this engine each size runs twice: the first run fills the
data cache, the second reads it.

    python bench/data_scale.py --old 4ea06b3 --sizes 100000 1000000 2000000

`--old REV` checks REV out in a git worktree and runs that engine the same way (its code first on the import path).
Results go to bench/results/data_scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "a", "film", "movie", "story", "plot", "actor", "scene", "great", "terrible", "boring", "funny", "slow", "quick", "moving", "heart", "music", "score", "dull", "bright", "dark", "long", "short", "best", "worst", "simply", "never", "always", "quite", "really", "truly", "deeply", "oddly"]


def generate(path: Path, rows: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for _ in range(rows):
            n = rng.randint(8, 40)
            f.write(" ".join(rng.choice(WORDS) for _ in range(n)) + "\t" + rng.choice(("pos", "neg")) + "\n")
    return path


def tree_memory(pid: int) -> int:
    """Proportional set size (resident memory, pages shared between processes split between them) of ``pid`` and
    every descendant: forked tokenizing workers share the parent's pages, which a sum of RSS would count twice."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
        todo.extend(c for c, parent in parents.items() if parent == p)
    return total


def measure(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int]:
    """(wall seconds, peak bytes, exit code)."""
    log = cwd / "stderr.log"
    start = time.perf_counter()
    with log.open("w") as err:  # a file, not a pipe: nobody reads a pipe while the run writes to it
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_memory(proc.pid))
            time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode:
        print(log.read_text()[-3000:], file=sys.stderr)
    print(json.dumps({"command": command[-2], "wall": round(wall, 1), "peak_gb": round(peak / 2**30, 3),
                      "exit": proc.returncode}), flush=True)
    return wall, peak, proc.returncode


def task_file(folder: Path, data: Path) -> Path:
    task = {"task": "classification", "data": {"train": str(data)},
            "training": {"max_steps": 2, "batch_size": 32, "epochs": 1}, "output_dir": str(folder / "run")}
    path = folder / "task.json"
    path.write_text(json.dumps(task), encoding="utf-8")
    return path


def run_engine(code: Path, task: Path, cache: Path) -> tuple[float, int, int]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_CACHE": str(cache), "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": f"{code}:{code / 'plugins'}"}
    return measure([sys.executable, "-m", "engine", "run", str(task), "--overwrite"], env, task.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 2_000_000])
    parser.add_argument("--old", help="a git revision to compare with (checked out in a worktree)")
    parser.add_argument("--new", default="HEAD", help="the revision measured as new (default: HEAD, in a worktree)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "data_scale.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="data-scale-"))
    trees = {"new": work / "new", **({"old": work / "old"} if args.old else {})}
    for name, tree in trees.items():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), getattr(args, name)],
                       check=True, capture_output=True)
    results = []
    try:
        for size in args.sizes:
            folder = work / str(size)
            folder.mkdir()
            data = generate(folder / "train.tsv", size)
            task = task_file(folder, data)
            row: dict[str, object] = {"rows": size, "file_mb": data.stat().st_size / 1e6}
            if "old" in trees:
                row["old"] = run_engine(trees["old"], task, folder / "cache-old")
            row["new"] = run_engine(trees["new"], task, folder / "cache")
            row["new_cached"] = run_engine(trees["new"], task, folder / "cache")
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    write(args, results)


def write(args: argparse.Namespace, results: list[dict]) -> None:
    lines = [
        "# Data of any size: setup memory and time per row",
        "",
        f"`python bench/data_scale.py {' '.join(sys.argv[1:])}` on {os.cpu_count()} CPU cores. Classification TSV, "
        "8-40 words per row, packaged MiniLM, `training.max_steps=2`: whole `engine run` processes. Peak memory: "
        "largest sum of proportional set size (PSS) over the process and its children. *old*: engine at "
        f"`{args.old}` (rows as Python dicts, tokenized in every run); *new*: engine at `{args.new}`: Arrow splits and features, first run "
        "(fills the cache) and second run (reads it).",
        "",
        "| rows | file MB | run | wall s | peak GiB | KiB per row | ms per 1k rows | second run / first |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        first = row["new"][0]
        for name in ("old", "new", "new_cached"):
            if name not in row:
                continue
            wall, peak, code = row[name]
            ratio = f"{wall / first:.2f}" if name == "new_cached" else ""
            status = "" if code == 0 else f" (exit {code})"
            lines.append(f"| {row['rows']:,} | {row['file_mb']:.0f} | {name}{status} | {wall:.1f} | {peak / 2**30:.2f} | "
                         f"{peak / 1024 / row['rows']:.2f} | {wall * 1e3 / row['rows'] * 1000:.1f} | {ratio} |")
    lines += ["", "KiB per row and ms per 1k rows divide the whole process (imports and model included) by the rows, "
              "so they fall as the size grows; the differences between rows of the table are what the data costs."]
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
