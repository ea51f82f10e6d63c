"""engine against its peers, in whole processes: training, prediction and start-up, medians of alternated runs.

Training (all-MiniLM-L6-v2, SST-2 sentences, 1 epoch, batch 32, lr 1e-4, 6% linear warm-up, weight decay 0.01,
gradient clipping 1.0, max 128 tokens, seed 13, torch's default threads; each then scores the same held-out
validation rows and saves its model):

- engine: `engine run task.json`, defaults (length-grouped batches; it also writes its report and predictions)
- Trainer (a): padded to max_length, random batches, as transformers' run_glue example does by default
- Trainer (b): dynamic padding, random batches
- Trainer (c): dynamic padding, length-grouped batches (``train_sampling_strategy="group_by_length"``)
- Accelerate loop: a hand-written loop in the shape of run_glue_no_trainer (dynamic padding, random batches)

Prediction (2,000 held-out sentences, the model engine trained): `engine predict` (also with ``--predict-flags``,
e.g. "--quantize int8") against a transformers text-classification pipeline as its documentation calls it (one
text at a time) and with batch_size 32. engine starts every run with an empty data cache.

Start-up: `engine --help`, `engine validate task.json`, and each contender's time from process start to the end
of its first optimizer step.

Each measurement is a process of its own; the contenders run in turn, ``--repeats`` rounds (default 3), and the
tables give medians and ratios within this run. Peak memory is the child's maximum resident set (wait4). Writes
bench/results/speed_vs_peers.md and JSON, and plots to docs/images/.

    python bench/speed_vs_peers.py [--data-dir ../shared/data] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sst2_sample import DEFAULT_DATA, sample, write_tsv

BATCH, LR, SEED, MAX_LENGTH, WARMUP, DECAY = 32, 1e-4, 13, 128, 0.06, 0.01
ROOT = Path(__file__).resolve().parents[1]

TRAINERS = {
    "engine": "engine (defaults)",
    "trainer-a": "Trainer (a) padded to max_length",
    "trainer-b": "Trainer (b) dynamic padding",
    "trainer-c": "Trainer (c) dynamic, length-grouped",
    "loop": "Accelerate loop (dynamic padding)",
}

# A task-file plugin that notes when engine's first optimizer step ends (time.time(), for the time to first step).
PROBE = '''
import os, time
from engine import Callback, hookimpl


class FirstStep(Callback):
    def __init__(self, options):
        pass

    def on_step_end(self, state, logs):
        if state.global_step == 1:
            with open(os.environ["BENCH_FIRST_STEP"], "w") as f:
                f.write(repr(time.time()))


@hookimpl
def callback(register):
    register("first_step", FirstStep)
'''


def model_path() -> str:
    from engine.model.encoder import resolve_model_path

    return resolve_model_path("all-MiniLM-L6-v2")


def rows_of(tsv: Path) -> tuple[list[str], list[int]]:
    lines = [line.rsplit("\t", 1) for line in tsv.read_text(encoding="utf-8").split("\n")[1:] if line]
    return [s for s, _ in lines], [int(label) for _, label in lines]


def first_step_done() -> None:
    with open(os.environ["BENCH_FIRST_STEP"], "w") as f:
        f.write(repr(time.time()))


# --- workers: each runs in a process of its own --------------------------------------------------------------


def seed() -> int:
    return int(os.environ.get("BENCH_SEED", SEED))


def worker_trainer(folder: Path, variant: str) -> dict:
    """The Trainer as its users run it (a: run_glue's default padding; b: dynamic; c: dynamic, length-grouped)."""
    import datasets
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    class FirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                first_step_done()

    tokenizer = AutoTokenizer.from_pretrained(model_path())
    padding = "max_length" if variant == "a" else False

    def encode(tsv: Path) -> datasets.Dataset:
        texts, labels = rows_of(tsv)
        return datasets.Dataset.from_dict({"text": texts, "label": labels}).map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=MAX_LENGTH, padding=padding), batched=True,
            remove_columns=["text"])

    train, validation = encode(folder / "train.tsv"), encode(folder / "validation.tsv")
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
    args = TrainingArguments(
        output_dir=str(folder / "hf"), per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH * 2,
        learning_rate=LR, num_train_epochs=1, warmup_steps=WARMUP, weight_decay=DECAY, max_grad_norm=1.0, seed=seed(),
        save_strategy="no", eval_strategy="no", report_to=[], logging_strategy="no", use_cpu=True,
        disable_tqdm=True, train_sampling_strategy="group_by_length" if variant == "c" else "random")

    def accuracy(prediction) -> dict:
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=validation, compute_metrics=accuracy,
                      data_collator=default_data_collator if variant == "a" else DataCollatorWithPadding(tokenizer),
                      callbacks=[FirstStep()])
    result = trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(folder / "hf" / "model"))
    return {"samples_per_second": result.metrics["train_samples_per_second"], "accuracy": metrics["eval_accuracy"]}


def worker_loop(folder: Path) -> dict:
    """A hand-written Accelerate loop, as transformers' run_glue_no_trainer example writes one."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        get_linear_schedule_with_warmup,
    )

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(seed())
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    collator = DataCollatorWithPadding(tokenizer)

    def features(tsv: Path) -> list[dict]:
        texts, labels = rows_of(tsv)
        encoded = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)
        return [{"input_ids": ids, "attention_mask": mask, "labels": label}
                for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], labels)]

    train = DataLoader(features(folder / "train.tsv"), batch_size=BATCH, shuffle=True, collate_fn=collator)
    validation = DataLoader(features(folder / "validation.tsv"), batch_size=BATCH * 2, collate_fn=collator)
    model = AutoModelForSequenceClassification.from_pretrained(model_path(), num_labels=2)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
               "weight_decay": DECAY},
              {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
               "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LR)
    steps = len(train)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(WARMUP * steps), steps)
    model, optimizer, train, validation, scheduler = accelerator.prepare(model, optimizer, train, validation,
                                                                         scheduler)
    model.train()
    started, rows = time.perf_counter(), 0
    for step, batch in enumerate(train):
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        rows += len(batch["labels"])
        if step == 0:
            first_step_done()
    seconds = time.perf_counter() - started
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in validation:
            predicted = model(**batch).logits.argmax(-1)
            correct += int((predicted == batch["labels"]).sum())
            total += len(batch["labels"])
    accelerator.unwrap_model(model).save_pretrained(str(folder / "loop-model"))
    return {"samples_per_second": rows / seconds, "accuracy": correct / total}


def worker_pipeline(folder: Path, model_dir: Path, batch_size: int | None) -> dict:
    """transformers' text-classification pipeline on the model engine saved (transformers-loadable): as its
    documentation calls it (one text at a time), or with its batch_size argument."""
    from transformers import pipeline

    texts, _ = rows_of(folder / "predict.tsv")
    classify = pipeline("text-classification", model=str(model_dir), device="cpu")
    batching = {"batch_size": batch_size} if batch_size else {}
    outputs = classify(texts, truncation=True, max_length=MAX_LENGTH, **batching)
    # The model's labels are SST-2's own, "0" and "1" (engine saved them as id2label).
    (folder / "pipeline.json").write_text(json.dumps([int(o["label"]) for o in outputs]))
    return {}


# --- the parent: runs the workers, measures, writes the results ---------------------------------------------------


def timed(command: list[str], folder: Path, env: dict | None = None) -> dict:
    """Run a whole process; its wall time, peak resident memory (MiB), and the JSON it printed last, if any."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    probe = folder / "first_step.txt"
    probe.unlink(missing_ok=True)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "BENCH_FIRST_STEP": str(probe), **(env or {})}
    with out.open("w") as stdout, err.open("w") as stderr:
        started = time.time()
        process = subprocess.Popen(command, cwd=folder, stdout=stdout, stderr=stderr, env=environment)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.time() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err.read_text()[-3000:]}")
    lines = [line for line in out.read_text().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    result.update(wall=wall, peak_mib=usage.ru_maxrss / 1024)
    if probe.exists():
        result["first_step"] = float(probe.read_text()) - started
    return result


def run_contender(name: str, folder: Path, round_: int) -> dict:
    env = {"BENCH_SEED": str(SEED + round_)}
    if name == "engine":
        # A data cache of its own each time: engine tokenizes as on a first run (a second run would read the cache).
        with tempfile.TemporaryDirectory() as cache:
            result = timed([sys.executable, "-m", "engine", "run", "task.json", "--overwrite", "--set",
                            f"training.seed={SEED + round_}"], folder, {**env, "ENGINE_CACHE": cache})
        manifest = json.loads((folder / "run" / "manifest.json").read_text())
        metrics = json.loads((folder / "run" / "metrics.json").read_text())
        result.update(samples_per_second=manifest["training_time"]["samples_per_second"],
                      accuracy=metrics["validation"]["accuracy"])
        return result
    return timed([sys.executable, __file__, "--worker", name, "--folder", str(folder)], folder, env)


def accuracy_of(predicted: list[int], folder: Path) -> float:
    _, labels = rows_of(folder / "predict.tsv")
    return sum(p == y for p, y in zip(predicted, labels)) / len(labels)


def predict_contenders(folder: Path, flags: list[str]) -> dict[str, list[str]]:
    commands = {"engine predict": [sys.executable, "-m", "engine", "predict", "run", "-i", "predict.tsv", "-o",
                                   "predictions.jsonl"]}
    if flags:
        commands[f"engine predict {' '.join(flags)}"] = [*commands["engine predict"], *flags]
    commands["pipeline (defaults)"] = [sys.executable, __file__, "--worker", "pipeline", "--folder", str(folder)]
    commands["pipeline (batch_size 32)"] = [sys.executable, __file__, "--worker", "pipeline-32", "--folder",
                                            str(folder)]
    return commands


def predictions_of(name: str, folder: Path) -> list[int]:
    if name.startswith("pipeline"):
        return json.loads((folder / "pipeline.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return [int(row["label"]) for row in rows]


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def plot(training: dict[str, list[dict]], predicting: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), width_ratios=[5, 3])
    names = list(training)
    walls = [median([r["wall"] for r in training[n]]) for n in names]
    left.barh([TRAINERS[n] for n in names], walls, color=["tab:blue" if n == "engine" else "tab:gray" for n in names])
    left.invert_yaxis()
    left.set(title="Training, whole process (median s, lower is better)", xlabel="seconds")
    for y, wall in enumerate(walls):
        left.text(wall, y, f" {wall:.1f}", va="center")
    names = list(predicting)
    walls = [median([r["wall"] for r in predicting[n]]) for n in names]
    right.barh(names, walls, color=["tab:blue" if n.startswith("engine") else "tab:gray" for n in names])
    right.invert_yaxis()
    right.set(title="Prediction (median s)", xlabel="seconds")
    for y, wall in enumerate(walls):
        right.text(wall, y, f" {wall:.1f}", va="center")
    for ax in (left, right):
        ax.set_xlim(0, max(ax.get_xlim()[1], 1) * 1.15)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 320 training rows, 200 validation, 320 to predict, one round")
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--predict", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="comma-separated contenders to train (default: all)")
    parser.add_argument("--predict-flags", default="", help="also time engine predict with these flags")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "speed_vs_peers.md")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "images" / "benchmark_speed.png")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        folder = args.folder
        result = {"trainer-a": lambda: worker_trainer(folder, "a"), "trainer-b": lambda: worker_trainer(folder, "b"),
                  "trainer-c": lambda: worker_trainer(folder, "c"), "loop": lambda: worker_loop(folder),
                  "pipeline": lambda: worker_pipeline(folder, folder / "run" / "model", None),
                  "pipeline-32": lambda: worker_pipeline(folder, folder / "run" / "model", BATCH)}[args.worker]()
        print(json.dumps(result))
        return
    if args.quick:
        args.train, args.validation, args.predict, args.repeats = 320, 200, 320, 1
        if args.output.name == "speed_vs_peers.md":
            args.output = args.output.with_name("speed_vs_peers_quick.md")
        args.plot = args.output.with_suffix(".png")

    train, held_out = sample(args.data_dir, args.train, args.validation + args.predict, SEED)
    names = [n for n in TRAINERS if not args.only or n in args.only.split(",")]
    training: dict[str, list[dict]] = {n: [] for n in names}
    predict_flags = args.predict_flags.split()
    predicting: dict[str, list[dict]] = {}
    startup: dict[str, list[float]] = {"engine --help": [], "engine validate task.json": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_tsv(train, folder / "train.tsv")
        write_tsv(held_out[: args.validation], folder / "validation.tsv")
        write_tsv(held_out[args.validation :], folder / "predict.tsv")
        (folder / "bench_probe.py").write_text(PROBE)
        task = {"task": "classification", "model": {"max_length": MAX_LENGTH},
                "data": {"train": "train.tsv", "validation": "validation.tsv", "text": "sentence"},
                "training": {"epochs": 1, "batch_size": BATCH, "seed": SEED},
                "plugins": ["bench_probe"], "callbacks": ["first_step"], "output_dir": "run"}
        (folder / "task.json").write_text(json.dumps(task, indent=2))
        for round_ in range(args.repeats):
            for name in names:
                result = run_contender(name, folder, round_)
                training[name].append(result)
                print(f"round {round_ + 1} {name}: {result['wall']:.1f} s, {result['samples_per_second']:.1f} "
                      f"samples/s, accuracy {result['accuracy']:.4f}, first step {result.get('first_step', 0):.1f} s, "
                      f"peak {result['peak_mib']:.0f} MiB", flush=True)
            if "engine" not in names:
                continue
            for name, command in predict_contenders(folder, predict_flags).items():
                with tempfile.TemporaryDirectory() as cache:
                    result = timed(command, folder, {"ENGINE_CACHE": cache})
                result["accuracy"] = accuracy_of(predictions_of(name, folder), folder)
                predicting.setdefault(name, []).append(result)
                print(f"round {round_ + 1} {name}: {result['wall']:.1f} s, accuracy {result['accuracy']:.4f}",
                      flush=True)
            for name, command in [("engine --help", [sys.executable, "-m", "engine", "--help"]),
                                  ("engine validate task.json", [sys.executable, "-m", "engine", "validate",
                                                                 "task.json"])]:
                for _ in range(3):
                    startup[name].append(timed(command, folder)["wall"])

    def med(name: str, key: str) -> float:
        return median([r[key] for r in training[name]])

    lines = [
        "# engine against its peers: training, prediction, start-up",
        "",
        f"Date {date.today()}, {platform.machine()}, {os.cpu_count()} CPUs "
        f"({cpu_name()}), torch's default threads. Command: "
        f"`python bench/speed_vs_peers.py{' --quick' if args.quick else ''}{' --only ' + args.only if args.only else ''}"
        f"{' --predict-flags ' + repr(args.predict_flags) if args.predict_flags else ''}`",
        "",
        f"all-MiniLM-L6-v2; {args.train} SST-2 sentences to train on, {args.validation} held-out ones to score, "
        f"{args.predict} others to predict (seed {SEED}); 1 epoch, batch {BATCH}, lr {LR}, warm-up {WARMUP:.0%}, "
        f"weight decay {DECAY}, max {MAX_LENGTH} tokens. Whole processes, alternated, {args.repeats} round(s); "
        f"medians. Round r trains with seed {SEED} + r (all contenders alike); engine starts each run with an empty "
        "data cache. 'wall' is the whole process (imports, tokenization, training, scoring the validation rows, "
        "saving the model); samples/s is the training loop's own; 'first step' is from process start to the end "
        "of the first optimizer step.",
        "",
        "## Training",
        "",
    ]
    if training:
        rows = []
        for name in names:
            rows.append([TRAINERS[name], f"{med(name, 'wall'):.1f}",
                         " / ".join(f"{r['wall']:.1f}" for r in training[name]), f"{med(name, 'samples_per_second'):.1f}",
                         f"{med(name, 'first_step'):.1f}", f"{med(name, 'peak_mib'):.0f}", f"{med(name, 'accuracy'):.4f}"])
        lines += table(["contender", "wall s (median)", "each round", "samples/s", "first step s", "peak MiB",
                        "accuracy"], rows)
        if "engine" in names:
            lines += ["", "engine's speed-up, per round (the peer's wall time over engine's in the same round) and "
                      "the median of those:", ""]
            ratio_rows = []
            for name in names[1:]:
                ratios = [p["wall"] / e["wall"] for p, e in zip(training[name], training["engine"])]
                ratio_rows.append([TRAINERS[name], f"{median(ratios):.2f}x",
                                   " / ".join(f"{r:.2f}x" for r in ratios),
                                   f"{med('engine', 'accuracy') - med(name, 'accuracy'):+.4f}"])
            lines += table(["vs", "speed-up (median)", "each round", "accuracy difference (engine - peer)"],
                           ratio_rows)
    if predicting:
        lines += ["", "## Prediction", "", f"{args.predict} held-out sentences, with the model engine trained in the "
                  "same round (the pipeline loads RUN_DIR/model, which transformers reads as it is); accuracy "
                  "against their labels, median over the rounds. Speed-ups: the pipeline's wall time over "
                  "engine's, in the same round.", ""]
        rows = []
        pipelines = [n for n in predicting if n.startswith("pipeline")]
        for name, results in predicting.items():
            ratios = [" / ".join(f"{median([b['wall'] / r['wall'] for b, r in zip(predicting[p], results)]):.2f}x"
                                 for p in pipelines)]
            rows.append([name, f"{median([r['wall'] for r in results]):.1f}",
                         " / ".join(f"{r['wall']:.1f}" for r in results), *ratios,
                         f"{median([r['peak_mib'] for r in results]):.0f}",
                         f"{median([r['accuracy'] for r in results]):.4f}"])
        lines += table(["contender", "wall s (median)", "each round", "speed-up vs " + " / ".join(pipelines),
                        "peak MiB", "accuracy"], rows)
        lines += ["", "## Start-up", ""]
        lines += table(["command", "wall s (median)", "each"],
                       [[name, f"{median(v):.3f}", " / ".join(f"{x:.3f}" for x in v)] for name, v in startup.items()])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    (args.output.with_suffix(".json")).write_text(json.dumps(
        {"training": training, "predicting": predicting, "startup": startup}, indent=1))
    if training and predicting:
        plot(training, predicting, args.plot)
    print(args.output.read_text())


if __name__ == "__main__":
    main()
