"""The defaults study (issue 28): which defaults reach the best scores, chosen across datasets, not on one.

For each built-in task, on several public datasets, each candidate default is changed alone from engine 0.2's
defaults (one factor at a time; ``BASELINE`` pins them), trained with three seeds on the packaged all-MiniLM-L6-v2
and scored on held-out rows carved with a fixed seed from the training files (the standard evaluation splits are
kept elsewhere). A candidate counts as better on a dataset when its mean gain over the default, paired by seed,
exceeds the standard deviation of those gains; the study recommends a change only where it is better on most of its
task's datasets and worse on none.

    python bench/defaults.py --data ../shared/data [--datasets sst2 trec stsb conll] [--share 0.1]
        [--variants default pooling=mean] [--seeds 1 2 3] [--max-minutes 60]

Resumable: each finished run is in bench/results/defaults.json at once, and a rerun skips it; --max-minutes stops
starting new runs after that long. The table is bench/results/defaults.md. Design (printed again in the .md):

- Datasets: classification on SST-2 (full sentences only, held out as bench/augmentation.py carves them), TREC
  (coarse classes, 500 questions held out), the UCI sentiment sentences (Amazon, IMDb, Yelp; 600 held out) and the
  UCI SMS Spam Collection (ham/spam; texts deduplicated, HTML entities unescaped, 600 held out);
  regression on STS-B (1,000 pairs held out, as bench/multitask.py) and, no second public regression set being
  reachable offline, on two of STS-B's genres alone as sets of their own, each with 500 pairs held out: captions
  (MSRvid video and Flickr image descriptions, 2,000 pairs) and news (headlines, MSRpar, DEFT news; 3,299 pairs), whose
  sources, lengths and score spreads differ; tagging on CoNLL-2003 (the first 1,000 sentences
  of valid.txt held out), WNUT-17 (its dev file) and BTC (its dev file).
- Training rows: ``--share`` of each dataset's pool (10% by default, 1 for all), drawn with the seed.
- Variants, each against ``default`` (0.2's defaults: nothing set but ``training.min_steps`` 0): head pooling (cls,
  mean) and head dropout (0, 0.3) for sequence tasks; the CRF against a softmax head and every subword labelled for
  tagging; learning rate (half, double), epochs (2, 5), warm-up (none, 10%) and a floor of 150 or 300 optimizer
  steps (``training.min_steps``, 300 the default since) for all; a second round on top of that floor joins changes
  with "+" (``min_steps=300+lr=double``) and compares each with the same run less its last change.
- Metric: accuracy, Pearson correlation, entity F1 (strict spans), on the held-out rows, of the model at the end of
  training (no validation split, so no checkpoint selection).
"""

from __future__ import annotations

import argparse
import html
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import multitask  # bench/ is not a package: its modules' helpers, reused
from augmentation import (
    carve_conll,
    carve_sst2,
    conll_sentences,
    engine_source,
    fmt,
    machine,
    mean_std,
    write_conll,
    write_tsv,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
CARVE_SEED = 0


# --- datasets ----------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A task's training pool and held-out rows; ``write`` puts a subset and the held-out rows in files and returns
    the task file's ``task`` and ``data``."""

    name: str
    task: str
    metric: str
    pool: list[Any]
    heldout: list[Any]

    def draw(self, seed: int, share: float) -> list[Any]:
        order = list(range(len(self.pool)))
        random.Random(f"{self.name}-draw:{seed}").shuffle(order)
        return [self.pool[i] for i in sorted(order[:max(1, round(share * len(self.pool)))])]

    def write(self, rows: list[Any], folder: Path) -> dict[str, Any]:
        if self.task == "tagging":
            # WNUT-17 and BTC separate token and tag by a tab; CoNLL-2003 by spaces (the reader's default).
            separator = {"separator": "\t"} if self.name in ("wnut17", "btc") else {}
            return {"task": "tagging", "data": {
                "format": "conll", **separator, "train": str(write_conll(rows, folder / "train.conll")),
                "test": str(write_conll(self.heldout, folder / "test.conll"))}}
        if self.task == "regression":
            header = "sentence1\tsentence2\tscore\n"
            for name, part in (("train.tsv", rows), ("test.tsv", self.heldout)):
                (folder / name).write_text(header + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in part), encoding="utf-8")
            return {"task": "regression", "data": {"format": "tsv", "train": str(folder / "train.tsv"),
                                                   "test": str(folder / "test.tsv"),
                                                   "text": ["sentence1", "sentence2"], "label": "score"}}
        return {"task": "classification", "data": {
            "format": "tsv", "text": "sentence", "label": "label",
            "train": str(write_tsv(rows, folder / "train.tsv")), "test": str(write_tsv(self.heldout, folder / "test.tsv"))}}


def split_off(rows: list[Any], n: int, name: str) -> tuple[list[Any], list[Any]]:
    """``n`` rows held out (a fixed seed), the rest the pool, both in file order."""
    order = list(range(len(rows)))
    random.Random(f"{name}-carve:{CARVE_SEED}").shuffle(order)
    held = set(order[:n])
    return [rows[i] for i in sorted(held)], [rows[i] for i in range(len(rows)) if i not in held]


def clean(text: str) -> str:
    return " ".join(text.replace("\t", " ").split())


def load(name: str, data: Path) -> Dataset:
    if name == "sst2":
        carve = carve_sst2(data, 1000)
        return Dataset(name, "classification", "accuracy", carve.pool, carve.heldout)
    if name == "trec":
        rows = []
        for line in (data / "trec" / "train_5500.label").read_text(encoding="latin-1").splitlines():
            if line.strip():
                label, text = line.split(" ", 1)
                rows.append((clean(text), label.split(":")[0]))
        held, pool = split_off(rows, 500, name)
        return Dataset(name, "classification", "accuracy", pool, held)
    if name == "sentiment":
        rows = []
        for file in sorted((data / "sentiment-sentences").glob("*_labelled.txt")):
            for line in file.read_text(encoding="utf-8").splitlines():
                if "\t" in line:
                    text, label = line.rsplit("\t", 1)
                    rows.append((clean(text), label.strip()))
        held, pool = split_off(rows, 600, name)
        return Dataset(name, "classification", "accuracy", pool, held)
    if name == "sms":
        rows, seen = [], set()
        for line in (data / "sms-spam" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines():
            label, text = line.split("\t", 1)  # no quoting: 54 texts start with a quote character
            text = clean(html.unescape(text))
            if text not in seen:  # 403 rows repeat a text (spam templates): held out and trained on, they would leak
                seen.add(text)
                rows.append((text, label))
        held, pool = split_off(rows, 600, name)
        return Dataset(name, "classification", "accuracy", pool, held)
    if name.startswith("stsb"):
        lines = [line for line in (data / "stsb" / "train.tsv").read_text(encoding="utf-8").split("\n") if line.strip()]
        header = lines[0].split("\t")
        at = {column: header.index(column) for column in ("genre", "sentence1", "sentence2", "score")}
        genre = {"stsb": None, "stsb-captions": "main-captions", "stsb-news": "main-news"}[name]
        rows = [(clean(f[at["sentence1"]]), clean(f[at["sentence2"]]), f[at["score"]])
                for f in (line.split("\t") for line in lines[1:]) if genre in (None, f[at["genre"]])]
        held, pool = split_off(rows, 1000 if genre is None else 500, name)
        return Dataset(name, "regression", "pearson", pool, held)
    if name == "conll":
        carve = carve_conll(data, 1000)
        return Dataset(name, "tagging", "entity_f1", carve.pool, carve.heldout)
    if name in ("wnut17", "btc"):
        train, dev = {"wnut17": ("wnut17train.conll", "emerging.dev.conll"), "btc": ("btc.train", "btc.dev")}[name]
        # Blocks end at any whitespace-only line (WNUT-17 separates many with a lone tab); lines split on the tab.
        return Dataset(name, "tagging", "entity_f1", conll_sentences(data / name / train),
                       conll_sentences(data / name / dev))
    raise SystemExit(f"unknown dataset {name!r}")


DATASETS = ("sst2", "trec", "sentiment", "sms", "stsb", "stsb-captions", "stsb-news", "conll", "wnut17", "btc")


# --- variants ----------------------------------------------------------------------------------------------------

#: Each variant's sections over the task's defaults (a section without a name keeps the default component).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "pooling=cls": {"head": {"pooling": "cls"}},
    "pooling=mean": {"head": {"pooling": "mean"}},
    "dropout=0": {"head": {"dropout": 0.0}},
    "dropout=0.3": {"head": {"dropout": 0.3}},
    "head=softmax": {"head": {"name": "softmax"}},
    "label_subwords=all": {"task": {"label_subwords": "all"}},
    "lr=half": {"optimizer": {"lr": 0.5}},
    "lr=double": {"optimizer": {"lr": 2.0}},
    "epochs=2": {"training": {"epochs": 2}},
    "epochs=5": {"training": {"epochs": 5}},
    "warmup=0": {"scheduler": {"warmup_ratio": 0.0}},
    "warmup=0.1": {"scheduler": {"warmup_ratio": 0.1}},
    "min_steps=150": {"training": {"min_steps": 150}},
    "min_steps=300": {"training": {"min_steps": 300}},
    "min_steps=600": {"training": {"min_steps": 600}},
    "layer_decay=0.9": {"optimizer": {"layer_decay": 0.9}},
}
#: What every run sets unless its variant does: 0.2's defaults, so that the baseline stays put when engine's own
#: defaults change (a floor of optimizer steps and layer-wise decay came after 0.2).
BASELINE = {"training": {"min_steps": 0}, "optimizer": {"layer_decay": None}}
SEQUENCE_ONLY = {"pooling=cls", "pooling=mean", "dropout=0", "dropout=0.3"}
TAGGING_ONLY = {"head=softmax", "label_subwords=all"}


def parts(variant: str) -> list[str]:
    """A variant's single changes: ``min_steps=300+lr=double`` is two, applied in that order."""
    return variant.split("+")


def reference(variant: str) -> str:
    """What a variant is compared with: ``default`` for a single change, the variant less its last change for a
    combination (``min_steps=300+lr=double`` against ``min_steps=300``: a second round on top of a first)."""
    return "+".join(parts(variant)[:-1]) or "default"


def variant_name(text: str) -> str:
    unknown = [part for part in parts(text) if part not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant {unknown[0]!r}; expected one of {', '.join(VARIANTS)}, "
                                         "or several joined by '+'")
    return text


def applies(variant: str, task: str) -> bool:
    return not any((part in SEQUENCE_ONLY and task == "tagging") or (part in TAGGING_ONLY and task != "tagging")
                   for part in parts(variant))


def task_file(dataset: Dataset, sections: dict[str, Any], variant: str, seed: int, defaults: dict[str, Any]
              ) -> dict[str, Any]:
    """The run's task file: the dataset's task and data, the variant's change, the seed."""
    task: dict[str, Any] = {**sections, **BASELINE, "training": {**BASELINE["training"], "seed": seed, "report": False}}
    for key, value in (item for part in parts(variant) for item in VARIANTS[part].items()):
        value = dict(value)
        if key == "optimizer" and "lr" in value:  # a factor of the task's default learning rate
            value = {**value, "lr": defaults["optimizer"]["lr"] * value["lr"]}
        if key == "task":
            task["task"] = {"name": sections["task"], **value}
        else:
            task[key] = {**task.get(key, {}), **value}
    return task


def task_defaults(task: str) -> dict[str, Any]:
    """The task's defaults as a minimal task file resolves them (its optimizer's learning rate)."""
    from engine.api.plugins import plugin_manager
    from engine.config.resolve import resolve

    resolved = resolve({"task": task, "data": {"train": "train.tsv" if task != "tagging" else "t.conll"}},
                       plugin_manager().registry())
    return {"optimizer": {"lr": resolved.optimizer.options.lr}, "head": resolved.head.filled,
            "epochs": resolved.training.epochs}


# --- running -----------------------------------------------------------------------------------------------------


def train_one(task: dict[str, Any], folder: Path, metric: str) -> dict[str, Any]:
    """bench/multitask.py's run of one task file (its test metrics, seconds, steps), with ``metric``'s value as the
    score."""
    record = multitask.train_one(task, folder)
    return {"score": record["metrics"][metric], **record}


# --- the table ---------------------------------------------------------------------------------------------------


def verdict(gains: list[float]) -> str:
    """better / worse when the mean paired gain exceeds its standard deviation, else even."""
    if len(gains) < 2:
        return "–"
    mean, std = statistics.mean(gains), statistics.stdev(gains)
    return "better" if mean > std else "worse" if -mean > std else "even"


def write_table(data: dict[str, Any], command: str) -> str:
    runs = data["runs"]
    lines = [
        "# The defaults study: each candidate default against engine's defaults", "",
        f"Date {date.today()}, {data['meta']['machine']}. Command: `{command}`. Engine: {data['meta']['engine']}.",
        "", "## Design", "",
        *(line.replace("``", "`") for line in __doc__.split("Design (printed again in the .md):", 1)[1].strip()
          .split("\n")), "",
    ]
    cells: dict[tuple[str, float], dict[str, dict[int, float]]] = {}
    rows_of: dict[tuple[str, float], int] = {}
    for run in runs:
        cells.setdefault((run["dataset"], run["share"]), {}).setdefault(run["variant"], {})[run["seed"]] = run["score"]
        rows_of[(run["dataset"], run["share"])] = run["rows"]
    summary: dict[str, dict[str, list[str]]] = {}
    for (dataset, share), variants in sorted(cells.items()):
        metric = next(r["metric"] for r in runs if r["dataset"] == dataset)
        lines += [f"## {dataset}, {share:g} of the pool ({rows_of[(dataset, share)]:,} training rows): {metric}", "",
                  "| variant | mean ± std | gain over its reference, paired ± std | seeds | verdict |",
                  "|---|---|---|---|---|"]
        # Single changes in the grid's order, then combinations (each against all but its last change).
        for variant in [v for v in VARIANTS if v in variants] + sorted(v for v in variants if v not in VARIANTS):
            scores = variants[variant]
            mean, std = mean_std(list(scores.values()))
            base = variants.get(reference(variant), {})
            gains = [scores[s] - base[s] for s in scores if s in base]
            if variant == "default" or not gains:
                lines.append(f"| {variant} | {mean:.4f} ± {fmt(std)} | | {len(scores)} | |")
                continue
            g_mean, g_std = mean_std(gains)
            said = verdict(gains)
            summary.setdefault(variant, {}).setdefault(said, []).append(f"{dataset} ({share:.0%})")
            against = "" if reference(variant) == "default" else f" (vs {reference(variant)})"
            lines.append(f"| {variant} | {mean:.4f} ± {fmt(std)} | {g_mean:+.4f} ± {fmt(g_std)}{against} | "
                         f"{len(gains)} | {said} |")
        lines.append("")
    lines += ["## Across datasets", "",
              "A variant is better (worse) on a dataset when its mean paired gain over its reference (the default; for "
              "a combination, the same less its last change) exceeds (falls below minus) the standard deviation of "
              "the gains; even otherwise.", "",
              "| variant | better on | even on | worse on |", "|---|---|---|---|"]
    for variant, said in summary.items():
        lines.append(f"| {variant} | {', '.join(said.get('better', [])) or '–'} | "
                     f"{', '.join(said.get('even', [])) or '–'} | {', '.join(said.get('worse', [])) or '–'} |")
    lines += ["", "Every run's test metrics are in bench/results/defaults.json."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--variants", nargs="+", type=variant_name, default=list(VARIANTS),
                        help="single changes, or changes joined by '+' (compared with all but their last)")
    parser.add_argument("--share", type=float, default=0.1, help="share of each training pool (1: all of it)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--max-minutes", type=float, default=None, help="start no run after this long")
    parser.add_argument("--output", type=Path, default=RESULTS / "defaults.json")
    args = parser.parse_args()
    if not 0 < args.share <= 1:
        raise SystemExit(f"--share: expected a share in (0, 1], got {args.share}")
    if not (args.data / "sst2").is_dir():
        raise SystemExit(f"--data: {args.data} does not hold the shared datasets (sst2/, conll2003/...)")
    command = "python bench/defaults.py " + " ".join(sys.argv[1:])
    data = json.loads(args.output.read_text()) if args.output.exists() else {"runs": []}
    data["meta"] = {"machine": machine(), "engine": engine_source()}
    done = {(r["dataset"], r["share"], r["variant"], r["seed"]) for r in data["runs"]}
    started = time.monotonic()
    for name in args.datasets:
        dataset = load(name, args.data)
        defaults = task_defaults(dataset.task)
        for variant in args.variants:
            if not applies(variant, dataset.task):
                continue
            for seed in args.seeds:
                if (name, args.share, variant, seed) in done:
                    continue
                if args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes:
                    print(f"--max-minutes {args.max_minutes:g} reached; rerun to go on", flush=True)
                    finish(data, args, command)
                    return
                with tempfile.TemporaryDirectory(prefix="bench-defaults-") as tmp:
                    folder = Path(tmp)
                    rows = dataset.draw(seed, args.share)
                    sections = dataset.write(rows, folder)
                    print(f"{name} {args.share:g} {variant} seed {seed} ({len(rows):,} rows) ...", flush=True)
                    record = train_one(task_file(dataset, sections, variant, seed, defaults), folder, dataset.metric)
                data["runs"].append({"dataset": name, "share": args.share, "variant": variant, "seed": seed,
                                     "task": dataset.task, "metric": dataset.metric, "rows": len(rows), **record})
                args.output.write_text(json.dumps(data, indent=1) + "\n")
                print(f"  {dataset.metric} {record['score']:.4f} ({record['train_seconds']:.0f} s)", flush=True)
    finish(data, args, command)


def finish(data: dict[str, Any], args: argparse.Namespace, command: str) -> None:
    args.output.write_text(json.dumps(data, indent=1) + "\n")
    table = args.output.with_suffix(".md")
    table.write_text(write_table(data, command), encoding="utf-8")
    print(f"wrote {table}")


if __name__ == "__main__":
    main()
