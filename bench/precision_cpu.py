"""Training steps of all-MiniLM-L6-v2 on this CPU in fp32, bf16 autocast and fp16 autocast: samples/s, one process.

The numbers behind engine's mixed-precision policy (docs/benchmarks.md): on a CPU without native bf16 instructions
(AVX2 only), autocast emulates the 16-bit matrix products and training crawls. Batches of 32 random SST-2-length
inputs (8 to 40 tokens), AdamW, after 2 warm-up steps; the same steps for each precision.

    python bench/precision_cpu.py [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "precision_cpu.md")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification

    from engine.model.encoder import resolve_model_path
    from engine.training.precision import cpu_has_native_bf16

    torch.manual_seed(0)
    lengths = [int(n) for n in torch.randint(8, 41, (args.steps + 2,))]
    batches = [torch.randint(1000, 29000, (32, n)) for n in lengths]
    rates = {}
    for precision in ("fp32", "bf16", "fp16"):
        model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"), num_labels=2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        rows, seconds = 0, 0.0
        for step, ids in enumerate(batches):
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                loss = model(input_ids=ids, labels=torch.zeros(len(ids), dtype=torch.long)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if step >= 2:
                rows, seconds = rows + len(ids), seconds + time.perf_counter() - started
        rates[precision] = rows / seconds
        print(f"{precision}: {rates[precision]:.1f} samples/s", flush=True)
    lines = [
        "# Mixed precision on this CPU: training samples/s",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}. "
        f"Command: `python bench/precision_cpu.py --steps {args.steps}`",
        "",
        f"all-MiniLM-L6-v2, batches of 32 with 8 to 40 tokens, AdamW (fused), {args.steps} steps after 2 warm-up "
        "steps, one process.",
        "",
        "| precision | samples/s | vs fp32 |",
        "|---|---|---|",
        *(f"| {p} | {r:.1f} | {r / rates['fp32']:.2f}x |" for p, r in rates.items()),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
