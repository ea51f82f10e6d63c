"""Accuracy of `engine run` with default settings on SST-2: seeded training sentences (3,000 by default; all of
train.tsv less the test sentences with ``--train 64349 --test 3000``), scored on held-out SST-2 sentences it never
trained on. Writes bench/results/sst2_classification.md (or ``--output``).

    python bench/sst2_classification.py [--data-dir ../shared/data] [--train 3000] [--test 2000] [--epochs 1]
        [--seeds 13] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sst2_sample import DEFAULT_DATA, sample, write_tsv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13], help="data-sampling and training seeds")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "sst2_classification.md")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        train, test = sample(args.data_dir, args.train, args.test, seed)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_tsv(train, folder / "train.tsv")
            write_tsv(test, folder / "test.tsv")
            task = {"task": "classification", "data": {"train": "train.tsv", "test": "test.tsv", "text": "sentence"},
                    "training": {"epochs": args.epochs, "seed": seed}, "output_dir": "run"}
            (folder / "task.json").write_text(json.dumps(task))
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "engine", "run", str(folder / "task.json")], check=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
            wall = time.perf_counter() - start
            metrics = json.loads((folder / "run" / "metrics.json").read_text())["test"]
            manifest = json.loads((folder / "run" / "manifest.json").read_text())
        results.append((seed, metrics["accuracy"], metrics["f1_macro"], wall, manifest["training_time"]["samples_per_second"]))
        print(f"seed {seed}: accuracy {metrics['accuracy']:.4f}, wall {wall:.1f} s")

    lines = [
        f"# SST-2, {args.train:,} training sentences, default settings",
        "",
        f"Date {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads default.",
        f"Command: `python bench/sst2_classification.py --train {args.train} --test {args.test} --epochs {args.epochs} "
        f"--seeds {' '.join(map(str, args.seeds))}`",
        "",
        f"Model all-MiniLM-L6-v2 (packaged), {args.epochs} epoch(s), every other setting default. Test: {len(test)} held-out "
        "SST-2 training-file sentences (none seen verbatim in training). Wall time is the whole `engine run` process: "
        "imports, loading, tokenizing, training, evaluation, saving.",
        "",
        "| seed | test accuracy | test F1 (macro) | wall time (s) | training samples/s |",
        "|---|---|---|---|---|",
        *(f"| {s} | {a:.4f} | {f:.4f} | {w:.1f} | {r} |" for s, a, f, w, r in results),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
