"""The encoder's last layer at the first token only (engine/first_token.py) against the whole layer: training steps
and scoring of all-MiniLM-L6-v2 with engine's default classification head (linear, pooler), on length-grouped
batches of SST-2 sentences. The two alternate on the same batches, round after round, in one process; the ratio
is taken within each round, and the median reported. Also checks the two agree (scores, and one step's gradients).

    python bench/first_token.py [--data ../shared/data] [--rows 640] [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from sst2_sample import DEFAULT_DATA, sample  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder holding sst2/train.tsv")
    parser.add_argument("--rows", type=int, default=640, help="SST-2 sentences per round (batches of 32)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "first_token.md")
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from engine.head import HeadSpec
    from engine.model.encoder import EngineModel, resolve_model_path
    from engine_builtins.heads.modules import LinearHead

    rows, _ = sample(args.data, args.rows, 0, seed=13)
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    spec = HeadSpec(hidden_size=384, num_outputs=2, level="sequence", loss=torch.nn.functional.cross_entropy)
    model = EngineModel(AutoModel.from_pretrained(path), LinearHead(spec, 0.1, "pooler"), tokenizer.model_input_names)

    # Length-grouped batches, as engine's sampler makes them: sorted by length, cut into batches, shuffled.
    order = sorted(range(len(rows)), key=lambda i: len(tokenizer.tokenize(rows[i][0])))
    batches = []
    for start in range(0, len(order), 32):
        chosen = [rows[i] for i in order[start:start + 32]]
        batch = dict(tokenizer([s for s, _ in chosen], truncation=True, max_length=128, padding=True,
                               return_tensors="pt"))
        batch["labels"] = torch.tensor([int(label) for _, label in chosen])
        batches.append(batch)
    random.Random(13).shuffle(batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    def forward(batch: dict, first_token: bool) -> Any:
        """engine's forward (first token) or the same model with the whole last layer (the head on its output)."""
        if first_token:
            return model(**batch)
        return model.head(model.backbone(**{k: batch[k] for k in model.input_names}), batch)

    def train(first_token: bool) -> float:
        model.train()
        started = time.perf_counter()
        for batch in batches:
            forward(batch, first_token).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        return time.perf_counter() - started

    def score(first_token: bool) -> float:
        model.eval()
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                forward(batch, first_token)
        return time.perf_counter() - started

    # Agreement: scores in eval mode, and one step's gradients without dropout.
    model.eval()
    with torch.inference_mode():
        fast = torch.cat([forward(b, True).logits for b in batches])
        whole = torch.cat([forward(b, False).logits for b in batches])
    score_diff = (fast - whole).abs().max().item()
    grads = []
    for on in (True, False):
        model.eval()  # no dropout: the same function both ways
        model.zero_grad(set_to_none=True)
        forward(batches[0], on).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    grad_diff = ((grads[0] - grads[1]).abs().max() / grads[1].abs().max()).item()
    model.zero_grad(set_to_none=True)

    results: dict[str, list[tuple[float, float]]] = {"train": [], "score": []}
    train(False)  # warm-up: allocator, threads
    for round_ in range(args.rounds):
        for kind, work in (("train", train), ("score", score)):
            whole_s = work(False)
            fast_s = work(True)
            results[kind].append((whole_s, fast_s))
            print(f"round {round_ + 1} {kind}: whole layer {whole_s:.2f} s, first token {fast_s:.2f} s, "
                  f"{whole_s / fast_s:.2f}x", flush=True)

    def row(kind: str, label: str) -> str:
        pairs = results[kind]
        ratios = [w / f for w, f in pairs]
        rate = lambda s: len(rows) / statistics.median(s)  # noqa: E731
        return (f"| {label} | {rate([w for w, _ in pairs]):.1f} | {rate([f for _, f in pairs]):.1f} | "
                f"**{statistics.median(ratios):.2f}x** | {' / '.join(f'{r:.2f}' for r in ratios)} |")

    lines = [
        "# The last layer at the first token only, against the whole layer",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, torch's default "
        f"threads. Command: `python bench/first_token.py --rows {args.rows} --rounds {args.rounds}`",
        "",
        f"all-MiniLM-L6-v2 with engine's default classification head (linear, pooler); {len(rows)} SST-2 sentences "
        f"in {len(batches)} length-grouped batches of 32. Training: forward, backward, clipping, fused AdamW. "
        "Scoring: forward under inference_mode. Both ways alternate on the same batches in one process; the speed-up "
        "is the whole layer's time over the first token's within each round, median over the rounds.",
        "",
        "| work | rows/s, whole layer | rows/s, first token | speed-up | each round |",
        "|---|---|---|---|---|",
        row("train", "training step"),
        row("score", "scoring"),
        "",
        f"Agreement: largest score difference {score_diff:.1e}; largest gradient difference (one step, no dropout) "
        f"{grad_diff:.1e} of the largest gradient.",
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
