"""When LoRA pays off on this CPU: full fine-tuning, a frozen encoder (head only) and LoRA (r 8) on the same SST-2
sample, each a whole `engine run` process: accuracy, training time, peak memory, trainable parameters. Also checks
that the LoRA run's merged model/ gives, in plain transformers, the labels engine predicted.
Writes bench/results/lora.md.

    python bench/lora.py [--data-dir ../shared/data] [--train 3000] [--test 1000] [--epochs 2]
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

# name -> task-file sections over the defaults
CONFIGS = {
    "full fine-tuning (lr 1e-4, the default)": {},
    "frozen encoder, head only (lr 1e-3)": {"freeze": "backbone", "optimizer": {"lr": 1e-3}},
    "LoRA r 8 (lr 1e-4)": {"adapter": {"name": "lora", "r": 8}},
    "LoRA r 8 (lr 1e-3)": {"adapter": {"name": "lora", "r": 8}, "optimizer": {"lr": 1e-3}},
}

# Runs engine in this child process and reports the child's own peak memory (VmHWM, KiB; not ru_maxrss, which Linux
# carries over exec from the spawning process).
RUNNER = """
import sys
from engine.cli.commands import main
code = main(sys.argv[1:])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("PEAK_KB", int(status["VmHWM"].split()[0]), file=sys.stderr)
sys.exit(code)
"""


def run(folder: Path, sections: dict, epochs: int, seed: int) -> dict:
    task = {"task": "classification", "data": {"train": "train.tsv", "test": "test.tsv", "text": "sentence"},
            "training": {"epochs": epochs, "seed": seed}, "output_dir": "run", **sections}
    (folder / "task.json").write_text(json.dumps(task))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, "run", str(folder / "task.json"), "--overwrite"],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    peak = int(done.stderr.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    metrics = json.loads((folder / "run" / "metrics.json").read_text())["test"]
    manifest = json.loads((folder / "run" / "manifest.json").read_text())
    return {"accuracy": metrics["accuracy"], "wall": wall, "train": manifest["training_time"]["seconds"],
            "peak_mb": peak, **manifest["parameters"]}


def merged_agrees(folder: Path) -> float:
    """Share of test sentences on which AutoModelForSequenceClassification on model/ gives engine's label."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder / "run" / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "run" / "model")
    rows = [json.loads(line) for line in (folder / "run" / "predictions" / "test.jsonl").read_text().splitlines()]
    texts = [line.split("\t")[0] for line in (folder / "test.tsv").read_text().splitlines()[1:]]
    same = 0
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=256, return_tensors="pt")
            labels = model(**batch).logits.argmax(-1).tolist()
            same += sum(model.config.id2label[label] == row["prediction"]["label"]
                        for label, row in zip(labels, rows[i : i + 64]))
    return same / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "lora.md")
    args = parser.parse_args()

    train, test = sample(args.data_dir, args.train, args.test, args.seed)
    results, agreement = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_tsv(train, folder / "train.tsv")
        write_tsv(test, folder / "test.tsv")
        for name, sections in CONFIGS.items():
            results[name] = run(folder, sections, args.epochs, args.seed)
            print(name, results[name], flush=True)
            if "adapter" in sections and agreement is None:
                agreement = merged_agrees(folder)

    full = results[next(iter(CONFIGS))]
    lines = [
        f"# LoRA vs full fine-tuning vs a frozen encoder: SST-2, {args.train:,} training sentences",
        "",
        f"Date {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs.",
        f"Command: `python bench/lora.py --train {args.train} --test {args.test} --epochs {args.epochs}`",
        "",
        f"all-MiniLM-L6-v2 (packaged), {args.epochs} epochs, batch 32, seed {args.seed}, every other setting default; "
        f"accuracy on {args.test:,} held-out SST-2 training sentences. Whole `engine run` processes, one after "
        "another; peak memory is the process's maximum resident set.",
        "",
        "| configuration | accuracy | trainable parameters | training s | whole process s | peak memory MB |"
        " training time vs full |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['accuracy']:.4f} | {r['trainable']:,} ({r['trainable'] / r['total']:.2%}) | "
                     f"{r['train']:.1f} | {r['wall']:.1f} | {r['peak_mb']:.0f} | {r['train'] / full['train']:.2f}x |")
    lines += ["", f"The first LoRA run's merged `model/`, loaded by `AutoModelForSequenceClassification`, gives engine's "
                  f"label on {agreement:.2%} of the test sentences."]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
