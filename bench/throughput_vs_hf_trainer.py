"""Training throughput of `engine run` against the Hugging Face Trainer and a hand-written loop, in one run.

All three fine-tune the packaged all-MiniLM-L6-v2 for one epoch on the same SST-2 sample, batch 32, lr 1e-4,
dynamic padding, on the CPU. Each runs in its own process, one after another; samples/s counts optimisation only
(engine: from its manifest; Trainer: its own train_samples_per_second; the loop: timed around the loop).
Writes bench/results/throughput_vs_hf_trainer.md with ratios against the Trainer.

    python bench/throughput_vs_hf_trainer.py [--data-dir ../shared/data] [--train 2000]
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

BATCH, LR, SEED = 32, 1e-4, 13


def model_path() -> str:
    from engine.model import resolve_model_path

    return resolve_model_path("all-MiniLM-L6-v2")


def rows_of(tsv: Path) -> tuple[list[str], list[int]]:
    lines = [line.split("\t") for line in tsv.read_text().split("\n")[1:] if line]
    return [s for s, _ in lines], [int(label) for _, label in lines]


def worker_trainer(tsv: Path) -> float:
    import datasets
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    texts, labels = rows_of(tsv)
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    data = datasets.Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"])
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
    args = TrainingArguments(output_dir=str(tsv.parent / "hf"), per_device_train_batch_size=BATCH, learning_rate=LR,
                             num_train_epochs=1, save_strategy="no", report_to=[], logging_strategy="no", seed=SEED,
                             use_cpu=True, disable_tqdm=True, warmup_steps=0.06, weight_decay=0.01)
    result = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer)).train()
    return float(result.metrics["train_samples_per_second"])


def worker_loop(tsv: Path) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    texts, labels = rows_of(tsv)
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    encoded = tokenizer(texts, truncation=True, max_length=128)
    order = torch.randperm(len(texts)).tolist()
    model.train()
    start = time.perf_counter()
    for i in range(0, len(order), BATCH):
        idx = order[i : i + BATCH]
        batch = tokenizer.pad({"input_ids": [encoded["input_ids"][j] for j in idx],
                               "attention_mask": [encoded["attention_mask"][j] for j in idx]}, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([labels[j] for j in idx])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
    return len(texts) / (time.perf_counter() - start)


def worker_engine(tsv: Path, group: bool) -> float:
    folder = tsv.parent
    out = folder / f"engine-{group}"
    task = {"task": "classification", "data": {"train": tsv.name, "text": "sentence"},
            "training": {"epochs": 1, "batch_size": BATCH, "seed": SEED, "group_by_length": group},
            "optimizer": {"name": "adamw", "lr": LR}, "model": {"max_length": 128}, "output_dir": str(out)}
    (folder / "task.json").write_text(json.dumps(task))
    from engine.cli import main

    assert main(["run", str(folder / "task.json")]) == 0
    return float(json.loads((out / "manifest.json").read_text())["training_time"]["samples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "throughput_vs_hf_trainer.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tsv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        rate = {"trainer": lambda: worker_trainer(args.tsv), "loop": lambda: worker_loop(args.tsv),
                "engine": lambda: worker_engine(args.tsv, True), "engine-random": lambda: worker_engine(args.tsv, False)}[args.worker]()
        print(json.dumps({"samples_per_second": rate}))
        return

    train, _ = sample(args.data_dir, args.train, 0, SEED)
    contenders = [("Hugging Face Trainer", "trainer"), ("hand-written loop", "loop"),
                  ("engine (default: length-grouped batches)", "engine"), ("engine, random batches", "engine-random")]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tsv = write_tsv(train, Path(tmp) / "train.tsv")
        for label, worker in contenders:
            out = subprocess.run([sys.executable, __file__, "--worker", worker, "--tsv", str(tsv)], check=True,
                                 capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            rates[label] = json.loads(out.stdout.strip().splitlines()[-1])["samples_per_second"]
            print(f"{label}: {rates[label]:.1f} samples/s")
    base = rates["Hugging Face Trainer"]
    lines = [
        "# Training throughput: engine vs the Hugging Face Trainer vs a hand-written loop",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs. Command: "
        f"`python bench/throughput_vs_hf_trainer.py --train {args.train}`",
        "",
        f"all-MiniLM-L6-v2, {args.train} SST-2 sentences (seed {SEED}), 1 epoch, batch {BATCH}, lr {LR}, dynamic padding, "
        "max 128 tokens, CPU. Each contender in its own process, one after the other.",
        "",
        "| contender | samples/s | vs Trainer |",
        "|---|---|---|",
        *(f"| {label} | {rate:.1f} | {rate / base:.2f}x |" for label, rate in rates.items()),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
