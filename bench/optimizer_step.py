"""One AdamW step over all-MiniLM-L6-v2's parameters on this CPU: torch's per-tensor loop (its CPU default),
foreach, and fused (engine's default where torch has the kernel). Median seconds a step, one process.

    python bench/optimizer_step.py [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "optimizer_step.md")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification

    from engine.model.encoder import resolve_model_path

    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"), num_labels=2)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    seconds = {}
    variants = {"per-tensor loop (torch's CPU default)": {"foreach": False}, "foreach": {"foreach": True},
                "fused (engine's default)": {"fused": True}}
    for name, flags in variants.items():
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, **flags)
        optimizer.step()  # state allocated outside the timing
        times = []
        for _ in range(args.steps):
            started = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - started)
        seconds[name] = statistics.median(times)
        print(f"{name}: {seconds[name] * 1000:.1f} ms a step", flush=True)
    base = seconds["per-tensor loop (torch's CPU default)"]
    lines = [
        "# AdamW step on the CPU: per-tensor loop, foreach, fused",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}. "
        f"Command: `python bench/optimizer_step.py --steps {args.steps}`",
        "",
        f"all-MiniLM-L6-v2's {sum(p.numel() for p in params) / 1e6:.1f}M parameters in {len(params)} tensors; median "
        f"of {args.steps} steps.",
        "",
        "| implementation | ms a step | speed-up |",
        "|---|---|---|",
        *(f"| {name} | {s * 1000:.1f} | {base / s:.2f}x |" for name, s in seconds.items()),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
