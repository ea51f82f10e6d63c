"""Does torch.compile pay for fine-tuning on this CPU? Eager against torch.compile(dynamic=True), compile time
included, on all-MiniLM-L6-v2 training steps with the varying sequence lengths that length-grouped batches give.

Each variant in its own process; 24 steps of batch 32 with lengths drawn from 8 to 44 tokens, AdamW (fused). The
first step carries the compilation; 'steady' is the mean of steps 5 to 24.

    python bench/compile_cpu.py [--steps 24]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(compiled: bool, steps: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification

    from engine.model.encoder import resolve_model_path

    torch.manual_seed(0)
    batches = [torch.randint(1000, 29000, (32, int(n))) for n in torch.randint(8, 45, (steps,))]
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model, dynamic=True) if compiled else model
    model.train()
    times = []
    for ids in batches:
        started = time.perf_counter()
        loss = forward(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(32, dtype=torch.long)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return {"first": times[0], "steady": sum(times[4:]) / len(times[4:]), "total": sum(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "compile_cpu.md")
    parser.add_argument("--worker", choices=["eager", "compiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker == "compiled", args.steps)))
        return
    results = {}
    for name in ("eager", "compiled"):
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--steps", str(args.steps)], check=True,
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    eager, compiled = results["eager"], results["compiled"]
    break_even = ((compiled["first"] - eager["first"]) / (eager["steady"] - compiled["steady"])
                  if compiled["steady"] < eager["steady"] else None)
    import torch

    lines = [
        "# torch.compile for training on this CPU",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}. "
        f"Command: `python bench/compile_cpu.py --steps {args.steps}`",
        "",
        f"all-MiniLM-L6-v2, {args.steps} training steps of batch 32, lengths 8 to 44 tokens (dynamic shapes), AdamW "
        "(fused); each variant in its own process.",
        "",
        "| variant | first step s | steady ms a step | all steps s |",
        "|---|---|---|---|",
        *(f"| {name} | {r['first']:.1f} | {r['steady'] * 1000:.0f} | {r['total']:.1f} |" for name, r in results.items()),
        "",
        f"Steady speed-up of compiled over eager: {eager['steady'] / compiled['steady']:.2f}x. "
        + (f"The compilation pays for itself after about {break_even:.0f} steps." if break_even
           else "Compiled steps are not faster, so the compilation never pays for itself here."),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
