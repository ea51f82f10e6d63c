"""Training and inference throughput of the `crf` head against the `softmax` head, in one process, on the same
batches: the default model (all-MiniLM-L6-v2), the NER example's sentences, batches as `engine run` makes them
(tagging defaults: batch size 16, grouped by length). A training step is forward, backward, gradient clipping and an
AdamW step; an inference step is forward and decoding (Viterbi for the CRF, argmax for softmax).

Rounds alternate which head goes first, so drifts in machine load hit both; the figure is the median over rounds.
Writes bench/results/crf_head_throughput.md.

    python bench/crf_head_throughput.py [--rounds 7] [--steps 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import torch

from engine.head import HeadOutput
from engine.model.encoder import EngineModel, load_pretrained
from engine.training.batching import LengthGroupedBatches
from engine_builtins.optimizers import AdamWOptions, build_adamw
from engine_builtins.tagging import ConllOptions, CrfOptions, SoftmaxOptions, TaggingOptions, build_crf, build_softmax
from engine_builtins.tagging.readers import load_conll
from engine_builtins.tagging.tagger import TaggingTask

REPO = Path(__file__).resolve().parents[1]


def head_time(head: torch.nn.Module, model: EngineModel, batches: list[dict[str, torch.Tensor]]) -> float:
    """Median milliseconds of the head's loss, forward and backward, on fixed encoder outputs."""
    head.train()
    times = []
    for batch in batches:
        with torch.no_grad():
            output = model.backbone(**{k: batch[k] for k in model.input_names if k in batch})
        output.last_hidden_state.requires_grad_(True)
        start = time.perf_counter()
        head(output, batch).loss.backward()
        times.append(1000 * (time.perf_counter() - start))
        head.zero_grad(set_to_none=True)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "examples" / "ner" / "train.conll")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="batches per head per round")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "crf_head_throughput.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    task = TaggingTask(TaggingOptions())
    split = load_conll(ConllOptions(train=str(args.data)), REPO)["train"]
    task.fit(split)
    tokenizer, backbone = load_pretrained("all-MiniLM-L6-v2")
    features = task.encode(split, tokenizer, 128)
    order = list(LengthGroupedBatches([f["length"] for f in features], args.batch_size, seed=13))
    batches = [task.collate([features[i] for i in ids], tokenizer) for ids in order]
    batches = [b for b in batches if len(b["input_ids"]) == args.batch_size]
    needed = args.rounds * args.steps + 2
    batches = (batches * (needed // len(batches) + 1))[:needed]

    spec = task.head_spec(backbone.config.hidden_size)
    heads = {"crf": build_crf(CrfOptions(), spec), "softmax": build_softmax(SoftmaxOptions(), spec)}
    models = {name: EngineModel(copy.deepcopy(backbone), head, list(tokenizer.model_input_names))
              for name, head in heads.items()}
    optimizers = {name: build_adamw(AdamWOptions(lr=1e-4, head_lr=1e-3), model) for name, model in models.items()}

    def train_steps(name: str, part: list[dict[str, torch.Tensor]]) -> float:
        model, optimizer = models[name], optimizers[name]
        model.train()
        start = time.perf_counter()
        for batch in part:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return len(part) * args.batch_size / (time.perf_counter() - start)

    def infer_steps(name: str, part: list[dict[str, torch.Tensor]]) -> float:
        model = models[name]
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for batch in part:
                inputs = {k: v for k, v in batch.items() if k != "labels"}
                out: HeadOutput = model(**inputs)
                task.outputs(inputs, out)
        return len(part) * args.batch_size / (time.perf_counter() - start)

    for name in models:  # warm-up: first calls allocate and pick kernels
        train_steps(name, batches[:2])
        infer_steps(name, batches[:2])
    rates: dict[str, dict[str, list[float]]] = {"train": {n: [] for n in models}, "infer": {n: [] for n in models}}
    for r in range(args.rounds):
        part = batches[2 + r * args.steps : 2 + (r + 1) * args.steps]
        names = list(models) if r % 2 == 0 else list(reversed(list(models)))
        for name in names:
            rates["train"][name].append(train_steps(name, part))
        for name in names:
            rates["infer"][name].append(infer_steps(name, part))
        print(f"round {r + 1}: " + ", ".join(f"{kind} {n} {rates[kind][n][-1]:.1f}/s" for kind in rates for n in models))

    median = {kind: {n: statistics.median(v) for n, v in by_head.items()} for kind, by_head in rates.items()}
    # Paired by round (same batches, same moment), so a load swing on the shared machine cancels out.
    ratio = {kind: statistics.median(c / s for c, s in zip(rates[kind]["crf"], rates[kind]["softmax"])) for kind in rates}
    head_ms = {name: head_time(heads[name], models[name], batches[2:12]) for name in heads}
    words = sum(int(b["tag_mask"].sum()) for b in batches) / len(batches)
    tokens = sum(b["input_ids"].numel() for b in batches) / len(batches)
    lines = [
        "# CRF head vs softmax head: throughput",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}; the machine is shared, so both heads run in one process, "
        "alternating, on the same batches.",
        f"Command: `python bench/crf_head_throughput.py --rounds {args.rounds} --steps {args.steps}"
        + (f" --threads {args.threads}" if args.threads else "") + "`",
        "",
        f"Model all-MiniLM-L6-v2; data {args.data.relative_to(REPO) if args.data.is_relative_to(REPO) else args.data} "
        f"({len(task.tag_names)} tags); batch size {args.batch_size}, batches grouped by length as in training "
        f"(mean {tokens / args.batch_size:.1f} subword tokens and {words / args.batch_size:.1f} words per sentence); "
        f"{args.rounds} rounds of {args.steps} steps per head, median over rounds.",
        "",
        "| step | crf (sentences/s) | softmax (sentences/s) | crf / softmax (median of rounds) |",
        "|---|---:|---:|---:|",
        *(f"| {kind} | {median[kind]['crf']:.1f} | {median[kind]['softmax']:.1f} | {ratio[kind]:.3f}x |"
          for kind in ("train", "infer")),
        "",
        *(f"Per round, {kind} (crf / softmax): " + ", ".join(f"{c / s:.3f}" for c, s in zip(rates[kind]["crf"], rates[kind]["softmax"]))
          for kind in ("train", "infer")),
        "",
        f"The heads alone (on the encoder's outputs for the same batches; loss forward and backward, median per batch): "
        f"crf {head_ms['crf']:.2f} ms, softmax {head_ms['softmax']:.2f} ms, against "
        f"{1000 * args.batch_size / median['train']['softmax']:.0f} ms for a whole training step.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(args.output.read_text())


if __name__ == "__main__":
    main()
