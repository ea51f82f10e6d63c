"""Throughput on a GPU, for bench/gpu_check.sh: training samples/s and `engine predict` texts/s.

``train``: training steps of all-MiniLM-L6-v2 (the packaged default; a random BERT of its shape where it is not
installed) and of a random BERT of bert-base's size, each in fp32, bf16 autocast and bf16 autocast + torch.compile
(of each encoder layer, dynamic shapes), at batch 32 and 128; sequences of 128 tokens, two labels, fused AdamW,
gradient clipping, as the engine's step does. Each variant: a fresh model, 3 warm-up steps (the first also
compiles, and is reported), then ``--steps`` steps timed between two CUDA synchronisations; peak CUDA memory from
the start of the variant. Ratios are against fp32 at the same model and batch, measured in the same process.
Variants that would overrun ``--budget`` seconds are skipped and listed as such.

``predict``: `engine predict` as a user runs it, in a fresh process, on generated texts (8 to 40 words): wall
seconds for 1,000 and for 20,000 texts (``--texts``), at the default batch (64) and at 256; the difference of the
two sizes gives texts/s with the start-up (imports, CUDA, model loading) taken out. The model is the MiniLM above,
trained 2 steps by `engine run` first. Then one prediction in this process for its peak CUDA memory.

Each writes its figures as a Markdown section (rewritten after every measurement, so a run stopped by a time limit
leaves what it measured) and as JSON beside it:

    python bench/gpu_throughput.py train --output DIR/train.md [--budget 80] [--steps 20]
    python bench/gpu_throughput.py predict --output DIR/predict.md
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MINILM = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
VARIANTS = ("fp32", "bf16", "bf16+compile")
# Seconds a variant may take, to decide on skipping it: a model's first compilation, then one its cache serves
FIRST_COMPILE, VARIANT = 30.0, 10.0


def packaged_minilm() -> str | None:
    """The packaged model's folder, or None where it is not installed."""
    from engine.errors import EngineError
    from engine.model.encoder import resolve_model_path

    try:
        return resolve_model_path("all-MiniLM-L6-v2")
    except EngineError:
        return None


def build_model(name: str, device: str) -> tuple[Any, str]:
    """A sequence classifier on the device, and how it was made."""
    from transformers import AutoModelForSequenceClassification, BertConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    path = packaged_minilm() if name == "minilm" else None
    if path is not None:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        how = "all-MiniLM-L6-v2 (packaged)"
    else:
        shape = MINILM if name == "minilm" else BERT_BASE
        model = AutoModelForSequenceClassification.from_config(BertConfig(**shape, num_labels=2))
        how = ("random BERT of MiniLM's shape (the packaged model is not installed)" if name == "minilm"
               else "random BERT, bert-base's size")
    return model.to(device).train(), how


def time_variant(name: str, variant: str, batch: int, length: int, steps: int, device: str) -> dict[str, Any]:
    """samples/s of ``steps`` training steps after 3 warm-up steps; the first step's seconds; peak memory."""
    import torch

    torch._dynamo.reset()
    gc.collect()  # the last variant's model and optimizer
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    model, how = build_model(name, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    if variant.endswith("compile"):
        # Each encoder layer compiled on its own (regional compilation): the identical layers share one compiled
        # graph, so a 12-layer model compiles in about the time of a 6-layer one. Dynamic shapes, as the engine's
        # batches of varying length would need; the second batch size then reuses the first's compilation.
        for layer in model.base_model.encoder.layer:
            layer.compile(dynamic=True)
    ids = torch.randint(1000, 29000, (batch, length), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=variant != "fp32"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    sync()
    started = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - started
    for _ in range(2):
        step()
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"model": name, "made": how, "variant": variant, "batch": batch, "samples_per_s": batch * steps / seconds,
            "step_ms": 1000 * seconds / steps, "first_step_s": first, "peak_gib": peak}


def environment() -> str:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        gpu = "no GPU"
    return f"{gpu}; torch {torch.__version__} (CUDA {torch.version.cuda})"


def train_section(results: list[dict[str, Any]], skipped: list[str], args: argparse.Namespace) -> str:
    fp32 = {(r["model"], r["batch"]): r["samples_per_s"] for r in results if r["variant"] == "fp32"}
    made = {r["model"]: r["made"] for r in results}
    lines = [
        "## Training throughput",
        "",
        f"{environment()}. `python bench/gpu_throughput.py train --steps {args.steps}`: sequences of {args.length} "
        f"tokens, fused AdamW, clipping; {args.steps} steps timed after 3 warm-up steps. bf16+compile: each encoder "
        "layer compiled on its own, dynamic shapes; its first step includes the compilation (from the compiler's "
        "cache at the second batch size). Models: " + "; ".join(f"{k}: {v}" for k, v in made.items()) + ".",
        "",
        "| model | batch | variant | samples/s | × fp32 | ms a step | first step s | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = fp32.get((r["model"], r["batch"]))
        ratio = f"{r['samples_per_s'] / base:.2f}" if base else "–"
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "–"
        lines.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {r['samples_per_s']:,.0f} | {ratio} | "
                     f"{r['step_ms']:.1f} | {r['first_step_s']:.1f} | {peak} |")
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def train(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.budget
    plan = [(m, v, b) for v in VARIANTS if not v.endswith("compile") for m in args.models for b in args.batches]
    plan += [(m, "bf16+compile", b) for b in args.batches for m in args.models]
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name, variant, batch in plan:
        if variant not in args.variants:
            continue
        first_compile = variant.endswith("compile") and not any(
            r["model"] == name and r["variant"] == variant for r in results)
        needed = FIRST_COMPILE if first_compile else VARIANT
        if time.monotonic() + needed > deadline:
            skipped.append(f"{name} {variant} batch {batch} (the {args.budget:.0f} s budget)")
        else:
            try:
                results.append(time_variant(name, variant, batch, args.length, args.steps, args.device))
                print(json.dumps(results[-1]), flush=True)
            except Exception as exc:  # a variant that fails (out of memory, a compiler error) is reported, not fatal
                skipped.append(f"{name} {variant} batch {batch} (failed: {type(exc).__name__}: {str(exc)[:200]})")
                print(skipped[-1], file=sys.stderr, flush=True)
        args.output.write_text(train_section(results, skipped, args))
        args.output.with_suffix(".json").write_text(json.dumps({"results": results, "skipped": skipped}, indent=1))


def generated_texts(n: int, seed: int) -> str:
    from engine.testing import WORDS

    rng = random.Random(seed)
    return "text\n" + "".join(" ".join(rng.choices(WORDS, k=rng.randint(8, 40))) + "\n" for _ in range(n))


def prepare_run(folder: Path) -> tuple[Path, str]:
    """A run directory of the MiniLM (packaged, else random of its shape), trained 2 steps; and how it was made."""
    from engine.testing import build_tiny_model, engine_process, labelled_rows, tsv

    model = packaged_minilm()
    how = "all-MiniLM-L6-v2 (packaged)"
    if model is None:
        import torch
        from transformers import BertConfig, BertModel

        path = build_tiny_model(folder / "minilm-shape")  # its WordPiece tokenizer; the model replaced below
        vocab = len((path / "vocab.txt").read_text().splitlines())
        torch.manual_seed(0)
        BertModel(BertConfig(vocab_size=vocab, **MINILM, max_position_embeddings=128)).save_pretrained(path)
        model, how = str(path), "random BERT of MiniLM's shape (the packaged model is not installed)"
    (folder / "train.tsv").write_text(tsv(labelled_rows(["negative", "positive"], 64, 1)))
    task = {"task": "classification", "model": {"name": model, "max_length": 128},
            "data": {"train": "train.tsv"}, "training": {"max_steps": 2, "batch_size": 32, "report": False},
            "output_dir": "run"}
    (folder / "task.json").write_text(json.dumps(task))
    result = engine_process("run", "task.json", cwd=folder, env=cache(folder), timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"engine run failed:\n{result.stderr[-3000:]}")
    return folder / "run", how


def cache(folder: Path) -> dict[str, str]:
    """The data cache in the measurement's own folder: nothing of the machine's is read or left behind."""
    return {"ENGINE_CACHE": str(folder / "cache")}


def predict(args: argparse.Namespace) -> None:
    from engine.testing import engine_process

    folder = Path(tempfile.mkdtemp(prefix="gpu-predict-"))
    run, how = prepare_run(folder)
    few, many = args.texts
    sizes = {few: folder / "few.tsv", many: folder / "many.tsv"}
    for n, path in sizes.items():
        path.write_text(generated_texts(n, n))
    measured: list[dict[str, Any]] = []

    def write(extra: list[str]) -> None:
        lines = ["## `engine predict`", "",
                 f"{environment()}. {how}, trained 2 steps; generated texts of 8 to 40 words; each `engine predict "
                 "RUN --input FILE --output OUT --batch-size B` in a fresh process (wall time, start-up included).",
                 "", "| batch | texts | wall s | texts/s | texts/s without start-up |", "|---|---|---|---|---|"]
        for m in measured:
            marginal = f"{m['marginal']:,.0f}" if m.get("marginal") else "–"
            lines.append(f"| {m['batch']} | {m['texts']:,} | {m['seconds']:.1f} | {m['texts'] / m['seconds']:,.0f} | "
                         f"{marginal} |")
        args.output.write_text("\n".join(lines + extra) + "\n")
        args.output.with_suffix(".json").write_text(json.dumps(measured, indent=1))

    small: dict[int, float] = {}
    for batch, n in ((64, few), (64, many), (256, few), (256, many)):
        started = time.perf_counter()
        result = engine_process("predict", run, "--input", sizes[n], "--output", folder / "out.jsonl",
                                "--batch-size", batch, env=cache(folder), timeout=300)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"engine predict failed:\n{result.stderr[-3000:]}")
        row: dict[str, Any] = {"batch": batch, "texts": n, "seconds": seconds}
        if n == few:
            small[batch] = seconds
        elif batch in small:
            row["marginal"] = (n - few) / (seconds - small[batch])
        measured.append(row)
        print(json.dumps(row), flush=True)
        write([])

    import torch

    if torch.cuda.is_available():
        from engine.cli.commands import main

        torch.cuda.reset_peak_memory_stats()
        main(["predict", str(run), "--input", str(sizes[many]), "--output", str(folder / "out.jsonl"),
              "--batch-size", "256"])
        peak = torch.cuda.max_memory_allocated() / 2**30
        write(["", f"Peak CUDA memory of one prediction of the {many:,} texts at batch 256, in-process: {peak:.2f} GiB."])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("train", help="training samples/s")
    p.add_argument("--output", type=Path, required=True, help="the Markdown section (JSON beside it)")
    p.add_argument("--budget", type=float, default=200.0, help="seconds; variants that would overrun are skipped")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--models", type=lambda s: s.split(","), default=["minilm", "bert-base"])
    p.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[32, 128])
    p.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    p.add_argument("--device", default="cuda", help="cpu only to try the script out")
    p = commands.add_parser("predict", help="engine predict texts/s")
    p.add_argument("--output", type=Path, required=True, help="the Markdown section (JSON beside it)")
    p.add_argument("--texts", type=lambda s: [int(n) for n in s.split(",")], default=[1000, 20000],
                   help="the two sizes, few and many")
    args = parser.parse_args()
    train(args) if args.command == "train" else predict(args)


if __name__ == "__main__":
    main()
