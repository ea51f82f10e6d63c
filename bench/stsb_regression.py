"""Pearson and Spearman of `engine run` with default settings on STS-B: trained on ../shared/data/stsb/train.tsv
less a seeded 10% kept for validation, scored on that 10%. Writes bench/results/stsb_regression.md.

    python bench/stsb_regression.py [--data-dir ../shared/data] [--epochs 3] [--seed 13] [--output FILE]

The split keeps the file's lines byte for byte (quote characters inside sentences included), so the run reads them
through the same `tsv` format a user's task would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VALIDATION_SHARE = 0.1


def split_lines(train_tsv: Path, seed: int) -> tuple[str, list[str], list[str]]:
    """The header, and the data lines shuffled with ``seed`` and cut into 90% train and 10% validation."""
    header, *lines = [line for line in train_tsv.read_text(encoding="utf-8").split("\n") if line.strip()]
    random.Random(seed).shuffle(lines)
    cut = round(len(lines) * VALIDATION_SHARE)
    return header, lines[cut:], lines[:cut]


def write_lines(path: Path, header: str, lines: list[str]) -> None:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13, help="seed of the validation split (training keeps its default)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "stsb_regression.md")
    args = parser.parse_args()

    header, train, validation = split_lines(args.data_dir / "stsb" / "train.tsv", args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_lines(folder / "train.tsv", header, train)
        write_lines(folder / "validation.tsv", header, validation)
        task = {"task": "regression",
                "data": {"format": "tsv", "train": "train.tsv", "validation": "validation.tsv",
                         "text": ["sentence1", "sentence2"], "label": "score"},
                "training": {"epochs": args.epochs}, "output_dir": "run"}
        (folder / "task.json").write_text(json.dumps(task, indent=2))
        load_before = os.getloadavg()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine", "run", str(folder / "task.json")], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - start
        load_after = os.getloadavg()
        metrics = json.loads((folder / "run" / "metrics.json").read_text())["validation"]
        history = [json.loads(line) for line in (folder / "run" / "history.jsonl").read_text().splitlines()]
        evaluations = [h for h in history if h["event"] == "evaluate"]
        manifest = json.loads((folder / "run" / "manifest.json").read_text())
        resolved = json.loads((folder / "run" / "task.json").read_text())

    command = f"python bench/stsb_regression.py --epochs {args.epochs} --seed {args.seed}"
    lines = [
        "# STS-B regression, default settings",
        "",
        f"Date {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
        "torch threads default.",
        f"Command: `{command}`",
        "",
        f"Data: `stsb/train.tsv` (GLUE STS-B training file, {len(train) + len(validation)} pairs), shuffled with seed "
        f"{args.seed}: {len(train)} pairs to train on, {len(validation)} (10%) held out for validation and scored here. "
        "The GLUE dev and test splits are not used.",
        f"Task: `{json.dumps(task['task'])}`, sentence pairs, target `score` (0 to 5). Model {resolved['model']['name']} "
        f"(packaged), {args.epochs} epochs; every other setting the regression task's default: head "
        f"`{json.dumps(resolved['head'])}`, optimizer `{json.dumps(resolved['optimizer'])}`, scheduler "
        f"`{json.dumps(resolved['scheduler'])}`, batch size {resolved['training']['batch_size']}, seed "
        f"{resolved['training']['seed']}. The model kept is the best epoch by validation Pearson (epoch "
        f"{manifest['best']['epoch']}).",
        "Wall time is the whole `engine run` process: imports, loading, tokenizing, training, evaluation, saving. "
        f"The machine is shared: 1-minute load average {load_before[0]:.1f} at the start and {load_after[0]:.1f} at "
        f"the end, on {os.cpu_count()} CPUs.",
        "",
        "| Pearson | Spearman | RMSE | MAE | R² | wall time (s) | training samples/s |",
        "|---|---|---|---|---|---|---|",
        f"| {metrics['pearson']:.4f} | {metrics['spearman']:.4f} | {metrics['rmse']:.4f} | {metrics['mae']:.4f} "
        f"| {metrics['r2']:.4f} | {wall:.1f} | {manifest['training_time']['samples_per_second']} |",
        "",
        "Validation after each epoch:",
        "",
        "| epoch | Pearson | Spearman |",
        "|---|---|---|",
        *(f"| {h['epoch']} | {h['validation.pearson']:.4f} | {h['validation.spearman']:.4f} |" for h in evaluations),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
