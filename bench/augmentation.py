"""Does augmentation help fine-tuning? Plain fine-tuning against each augmentation and their combination, with
engine's defaults (the packaged all-MiniLM-L6-v2, its epochs, batch and learning rate: what a user gets; 0.2's by
default, today's with --defaults current), at 100, 500 and 2,000 SST-2 training sentences and on a 1% CoNLL-2003
sample, 5 seeds per cell; plus each lexical augmentation's throughput. Writes bench/results/augmentation.json (every
finished run, as it finishes) and bench/results/augmentation.md (the table); augmentation_current.json/.md under
--defaults current.

    python bench/augmentation.py [--data ../shared/data] [--dataset sst2|conll|all] [--sizes 100 500 2000]
                                 [--seeds 1 2 3 4 5] [--only random_swap ...] [--max-minutes M] [--quick]
                                 [--defaults 0.2|current]
                                 [--contextual '{"model": "DIR"}'] [--back-translation '{...}'] [--table-only]

Design (each choice is printed again in the .md):

- Paired seeds. Seed s draws its own training subset, and every cell of seed s (plain and each augmentation) trains
  on that subset with ``training.seed = s``: the gain of an augmentation is measured per seed against plain, then
  averaged (mean and standard deviation over seeds).
- SST-2 held-out: 1,000 full sentences carved from sst2/train.tsv with a fixed seed. That file holds every phrase of
  every sentence as a row of its own (90% of its rows are word spans of a longer row), so a random split leaks:
  training rows would be phrases of the held-out sentences. Here the full sentences are the rows that are no word
  span of another row; the held-out part is 1,000 of them, and training subsets are drawn only from the other full
  sentences that share no 5-word sequence with any held-out sentence (SST repeats some sentences with other
  punctuation or tokenization). No training row is thus a phrase of, or a near copy of, a held-out sentence; this
  is checked when the carve is made. Texts with two labels in the file are dropped, duplicates merged.
- CoNLL held-out: the first 1,000 sentences of conll2003/valid.txt (other articles than train.txt); seed s draws
  1% of train.txt's sentences (140).
- Evaluation happens once, at the end of training (the held-out part is the run's ``test`` data; there is no
  validation split, so no checkpoint selection and no evaluation during training). The HTML report is off.
- Augmentations as EDA (Wei & Zou 2019) uses them: augmented copies are added to the originals
  (``keep_original``), with the share of words changed (alpha) and copies per original (n_aug) of EDA's Table 3 for
  the training size (500 sentences or fewer: alpha 0.05, n_aug 16; up to 2,000: 0.05, 8; up to 5,000 and more:
  0.1, 4). A single augmentation adds one copy per original (the data doubles). The combination chains the four
  word operations (synonym replacement, random insertion, random swap, random deletion), each adding copies of a
  share q of the rows it gets, so that the copies per original, (1 + q)^4 - 1, come as close to n_aug as q <= 1
  allows (15 for n_aug 16, 8 for n_aug 8). Unlike EDA, a later step also edits earlier steps' copies, so a copy
  may carry more than one operation. Tagging uses the augmentations that keep tags aligned (word edits outside
  entities, mention replacement), alone and chained.
- Augmentations that are not registered (or that the task refuses) are skipped with the reason; a rerun fills
  them in. Back-translation and contextual substitution need model folders, given by flag as the augmentation's
  options in JSON; without them those cells are skipped (the packaged MiniLM has no masked-LM head, and no
  translation model can be downloaded on the bench machines).
- A control per row count: plain training on the same subset with every row written k times (k = the augmented
  run's rows per original), as many rows and optimizer steps as the augmented run. Under 0.2's defaults engine
  trains 3 epochs whatever the data size, so doubling the rows doubles the steps; the table gives each
  augmentation's gain over plain (what a user sees) and over that control (what the augmentation itself adds).
  Under today's defaults (--defaults current) a floor of 300 optimizer steps, in whole epochs, gives a small set's
  plain run about as many steps as its augmented runs (the table's steps column says how many), so the gain over
  plain is already the augmentation's; the controls can be left out there (--only without 'repeat').
- Resumable: each finished (dataset, size, augmentation chain, seed) is written to the JSON at once, and a rerun
  skips it. The chain's identity includes a digest of its augmentations' source modules: once an augmentation's
  code changes, its earlier runs stay in the JSON but leave the table, and a rerun measures the new code. ``--max-minutes`` stops starting new runs after that long; the table is written either way.

Runs are in-process (``engine.train``), one after another, with their output under a temporary folder that is
deleted after each run; engine's console output goes to a log file there (shown when a run fails).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import hashlib
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
WORK = Path(tempfile.gettempdir()) / "engine-bench-augmentation"  # the data cache; each invocation's own folder
SCRATCH = WORK  # this invocation's folder under WORK (set in main), so that two invocations never share files

CARVE_SEED = 0
NGRAM = 5  # a training sentence may share no sequence of this many words with a held-out sentence
CONLL_FRACTION = 0.01
LEXICAL = ["synonym_replacement", "random_insertion", "random_swap", "random_deletion"]  # EDA's order
TAGGING = [*LEXICAL, "mention_replacement"]
MODEL_BASED = {"contextual_substitution": "contextual", "back_translation": "back_translation"}
METRIC = {"sst2": "accuracy", "conll": "entity_f1"}


def eda_parameters(n: int) -> tuple[float, int]:
    """EDA's recommended alpha and n_aug for a training set of ``n`` sentences (Wei & Zou 2019, Table 3: 500 ->
    0.05, 16; 2,000 -> 0.05, 8; 5,000 -> 0.1, 4; more -> 0.1, 4). Sizes between rows take the next larger row."""
    if n <= 500:
        return 0.05, 16
    if n <= 2000:
        return 0.05, 8
    return 0.1, 4


# --- data ----------------------------------------------------------------------------------------------------


def spans(words: list[str]) -> Iterator[str]:
    """Every contiguous word span of ``words`` (the whole included)."""
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            yield " ".join(words[i:j])


def ngrams(words: list[str], k: int) -> Iterator[tuple[str, ...]]:
    return (tuple(words[i : i + k]) for i in range(len(words) - k + 1))


@dataclass
class SST2Carve:
    heldout: list[tuple[str, str]]
    pool: list[tuple[str, str]]  # full sentences a training subset is drawn from
    stats: dict[str, Any] = field(default_factory=dict)

    def draw(self, seed: int, n: int) -> list[tuple[str, str]]:
        """Seed ``seed``'s training subset: the first ``n`` of its shuffle of the pool (so 100 within 500 within
        2,000 for one seed)."""
        if n > len(self.pool):
            raise SystemExit(f"--sizes: {n} is more than the {len(self.pool):,} SST-2 sentences available")
        order = list(self.pool)
        random.Random(f"sst2-draw:{seed}").shuffle(order)
        return order[:n]


def carve_sst2(data_dir: Path, heldout_size: int) -> SST2Carve:
    """The held-out sentences and the training pool; see the module's docstring for why and how."""
    lines = (data_dir / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    labels: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        if line.strip():
            text, label = line.rsplit("\t", 1)
            labels[" ".join(text.split())].add(label.strip())
    texts = {t: next(iter(ls)) for t, ls in labels.items() if len(ls) == 1}
    inner: set[str] = set()  # every proper word span of every row
    for text in texts:
        words = text.split()
        inner.update(s for s in spans(words) if s.count(" ") + 1 < len(words))
    sentences = sorted(t for t in texts if t not in inner)
    heldout = sorted(random.Random(CARVE_SEED).sample(sentences, heldout_size))
    held_spans = {s for t in heldout for s in spans(t.split())}
    held_grams = {g for t in heldout for g in ngrams(t.split(), NGRAM)}
    near = [t for t in sentences if t not in held_spans and any(g in held_grams for g in ngrams(t.split(), NGRAM))]
    near_set = set(near)
    pool = [t for t in sentences if t not in held_spans and t not in near_set]
    # The guarantee, checked: no pool sentence is a word span of a held-out one or shares a NGRAM-word sequence.
    assert not any(t in held_spans for t in pool)
    assert not any(g in held_grams for t in pool for g in ngrams(t.split(), NGRAM))
    lengths = [len(t.split()) for t in pool]
    stats = {"rows": sum(1 for line in lines if line.strip()), "unique": len(labels),
             "conflicting": len(labels) - len(texts), "phrases": len(texts) - len(sentences),
             "sentences": len(sentences), "heldout": len(heldout),
             "heldout_positive": sum(texts[t] == "1" for t in heldout), "near_duplicates_dropped": len(near),
             "pool": len(pool), "pool_positive": sum(texts[t] == "1" for t in pool),
             "pool_mean_words": round(statistics.mean(lengths), 1),
             "heldout_mean_words": round(statistics.mean(len(t.split()) for t in heldout), 1)}
    return SST2Carve([(t, texts[t]) for t in heldout], [(t, texts[t]) for t in pool], stats)


def conll_sentences(path: Path) -> list[list[str]]:
    """A CoNLL file's sentences as their raw lines (document markers dropped)."""
    blocks: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
        elif not line.startswith("-DOCSTART-"):
            blocks[-1].append(line)
    return [b for b in blocks if b]


@dataclass
class ConllCarve:
    heldout: list[list[str]]
    pool: list[list[str]]
    stats: dict[str, Any]

    def draw(self, seed: int, n: int) -> list[list[str]]:
        order = list(range(len(self.pool)))
        random.Random(f"conll-draw:{seed}").shuffle(order)
        return [self.pool[i] for i in sorted(order[:n])]


def carve_conll(data_dir: Path, heldout_size: int) -> ConllCarve:
    pool = conll_sentences(data_dir / "conll2003" / "train.txt")
    heldout = conll_sentences(data_dir / "conll2003" / "valid.txt")[:heldout_size]
    entities = sum(line.split()[-1].startswith("B-") for block in heldout for line in block)
    return ConllCarve(heldout, pool, {"pool": len(pool), "heldout": len(heldout), "heldout_entities": entities,
                                      "sample": round(CONLL_FRACTION * len(pool))})


def write_tsv(rows: list[tuple[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{label}\n" for s, label in rows), encoding="utf-8")
    return path


def write_conll(blocks: list[list[str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\n".join(block) + "\n\n" for block in blocks), encoding="utf-8")
    return path


# --- cells ---------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    dataset: str
    size: int
    name: str  # "plain", an augmentation's name, "combination", or a control "plain, rows ×k"
    augment: list[dict[str, Any]]
    note: str = ""
    repeat: int = 1  # a control: plain, each training row written this many times (the steps an augmentation adds)
    control: int | None = None  # an augmentation: the repeat of the control with as many training rows
    implementation: str = ""  # digest of the augmentations' source: another implementation is another cell

    @property
    def spec(self) -> str:
        """What identifies the cell's runs in the JSON (with dataset, size, seed and held-out part)."""
        if self.repeat > 1:
            return json.dumps({"repeat": self.repeat})
        chain = json.dumps(self.augment, sort_keys=True)
        return f"{chain} @{self.implementation}" if self.implementation else chain


def implementation(registry: Any, chain: list[dict[str, Any]]) -> str:
    """A digest of the source files of the modules defining the chain's augmentations: runs of an earlier version
    of an augmentation are not taken for this one's."""
    digest = hashlib.sha1()
    for entry in chain:
        module = sys.modules.get(registry.find("augment", entry["name"]).factory.__module__)
        path = getattr(module, "__file__", None)
        digest.update(Path(path).read_bytes() if path else entry["name"].encode())
    return digest.hexdigest()[:12]


def step(registry: Any, name: str, **options: Any) -> tuple[dict[str, Any], list[str]]:
    """An ``augment`` entry with those of ``options`` the augmentation declares (the others are left out, and
    named)."""
    component = registry.find("augment", name)
    fields = getattr(getattr(component, "options", None), "model_fields", None)
    if fields is None:
        return {"name": name, **options}, []
    return ({"name": name, **{k: v for k, v in options.items() if k in fields}},
            [f"{name} has no option {k!r}" for k in options if k not in fields])


def plan_cells(dataset: str, size: int, registry: Any, model_options: dict[str, dict[str, Any] | None],
               only: set[str] | None) -> tuple[list[Cell], list[str]]:
    """The cells of one (dataset, size), and why others are skipped (not registered, no model folder given, or
    refused by engine's validation of the task file, e.g. a word augmentation that cannot keep tags aligned).

    Besides plain, a control for each number of training rows an augmentation ends with: plain with every row
    written k times, as many rows and optimizer steps as the augmented run (3 epochs over twice the rows are twice
    the steps, and a small set's plain run is far from converged): what is left of a gain over that control is the
    augmentation's, not the extra steps'."""
    alpha, n_aug = eda_parameters(size)
    cells, skipped = [Cell(dataset, size, "plain", [])], []
    names = LEXICAL + list(MODEL_BASED) if dataset == "sst2" else TAGGING
    registered = set(registry.names("augment"))
    wanted = (lambda name: True) if only is None else (lambda name: name in only)
    available = []  # word augmentations the task accepts, whether or not --only runs them alone
    controls: set[int] = set()  # rows per original of the augmented runs: the controls they need
    for name in names:
        if name not in registered:
            if wanted(name):
                skipped.append(f"{dataset} {size} {name}: not registered (yet) in this engine")
            continue
        if name in MODEL_BASED:
            given = model_options.get(name)
            if given is None:
                if wanted(name):
                    flag = MODEL_BASED[name].replace("_", "-")
                    skipped.append(f"{dataset} {size} {name}: no model folder given (--{flag} '{{...options...}}'); "
                                   "the packaged MiniLM has no masked-LM head and no translation model can be "
                                   "downloaded here")
                continue
            entry, dropped = step(registry, name, **given, keep_original=True)
        elif name == "mention_replacement":
            entry, dropped = step(registry, name, keep_original=True)
        else:
            entry, dropped = step(registry, name, p=alpha, keep_original=True)
        why = refusal(dataset, [entry])
        if why is not None:
            if wanted(name):
                skipped.append(f"{dataset} {size} {name}: engine refuses it: {why}")
            continue
        if name not in MODEL_BASED:
            available.append(name)
        controls.add(2)
        if wanted(name):
            cells.append(Cell(dataset, size, name, [entry], "; ".join(dropped), control=2,
                              implementation=implementation(registry, [entry])))
    # The combination is worked out whatever --only says, so that --only repeat knows its control.
    members = LEXICAL if dataset == "sst2" else [n for n in TAGGING if n in available]
    needed = LEXICAL if dataset == "sst2" else ["synonym_replacement", "mention_replacement"]
    missing = [n for n in needed if n not in available]
    if missing:
        if wanted("combination"):
            skipped.append(f"{dataset} {size} combination: needs {', '.join(missing)}, not registered (yet) "
                           "or refused")
    else:
        q = min(1.0, (1 + n_aug) ** (1 / len(members)) - 1)
        chain, notes = [], []
        for name in members:
            options = {"keep_original": True, "prob": round(q, 4)}
            if name != "mention_replacement":
                options["p"] = alpha
            entry, dropped = step(registry, name, **options)
            chain.append(entry)
            notes += dropped
        why = refusal(dataset, chain)
        if why is not None:
            if wanted("combination"):
                skipped.append(f"{dataset} {size} combination: engine refuses it: {why}")
        else:
            rows = round((1 + q) ** len(members))
            controls.add(rows)
            if wanted("combination"):
                cells.append(Cell(dataset, size, "combination", chain, "; ".join(notes), control=rows,
                                  implementation=implementation(registry, chain)))
    if wanted("repeat"):
        for k in sorted(controls):
            control = Cell(dataset, size, f"plain, rows ×{k}", [], repeat=k)
            if k == 2:
                cells.insert(1, control)  # after plain, before the single augmentations it controls
            else:
                cells.append(control)
    return cells, skipped


# --- running -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def redirected(log: Path) -> Iterator[None]:
    """stdout and stderr (the file descriptors, so engine's console and any library's output too) into ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("w") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# The training defaults a bench invocation runs under (--defaults). "0.2": as the first table ran, min_steps 0 (3
# epochs whatever the size, so an augmentation that doubles the rows doubles the steps: hence the controls) and one
# learning rate for the whole encoder (layer_decay null). "current": what `engine run` gives a user today, with the
# floor of 300 optimizer steps (whole epochs) and layer_decay 0.9 from the defaults study: a small set's plain run
# and its augmented runs then take about the same number of steps, so the gain over plain is the augmentation's.
@dataclass(frozen=True)
class Defaults:
    optimizer: dict[str, Any]  # the task file's overrides of engine's defaults
    training: dict[str, Any]
    title: str  # for the table's heading
    described: str  # for its settings line


DEFAULTS = {
    "0.2": Defaults({"layer_decay": None}, {"min_steps": 0}, "engine 0.2's defaults",
                    "`--defaults 0.2`: engine 0.2's defaults, `training.min_steps` 0 and `optimizer.layer_decay` "
                    "null, the rest what `engine run` gives a user"),
    "current": Defaults({}, {}, "engine's current defaults",
                        "`--defaults current`: what `engine run` gives a user today, `training.min_steps` 300 and "
                        "`optimizer.layer_decay` 0.9 included")}
DEFAULTS_IN_USE = DEFAULTS["0.2"]  # set in main


def task_for(dataset: str, train: Path, test: Path, seed: int, augment: list[dict[str, Any]]) -> dict[str, Any]:
    if dataset == "sst2":
        data = {"format": "tsv", "train": str(train), "test": str(test), "text": "sentence", "label": "label"}
        task = "classification"
    else:
        data = {"format": "conll", "train": str(train), "test": str(test)}
        task = "tagging"
    return {"task": task, "data": data, "augment": augment, "optimizer": dict(DEFAULTS_IN_USE.optimizer),
            "training": {"seed": seed, "report": False, **DEFAULTS_IN_USE.training}}


def refusal(dataset: str, augment: list[dict[str, Any]]) -> str | None:
    """Why engine refuses a task file with this augmentation chain (None: it accepts it), on a two-row file,
    without training."""
    from engine.api.runs import resolve_task
    from engine.errors import EngineError

    folder = SCRATCH / "validate"
    if dataset == "sst2":
        data = write_tsv([("a good film", "1"), ("a bad film", "0")], folder / "sst2.tsv")
    else:
        data = write_conll([["EU NNP B-NP B-ORG", "rejects VBZ B-VP O"], ["Peter NNP B-NP B-PER"]],
                           folder / "conll.conll")
    task = task_for(dataset, data, data, 0, augment)
    try:
        with redirected(folder / "validate.log"):
            resolve_task(task)
    except EngineError as exc:
        return " ".join(str(exc).split())
    return None


def train_one(task: dict[str, Any], folder: Path, rows: int) -> dict[str, Any]:
    """Train ``task`` (``rows`` rows in its training file) in-process; its metrics, times and settings."""
    import engine

    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "engine.log"
    start = time.perf_counter()
    try:
        with redirected(log):
            result = engine.train(task, output_dir=folder / "run", overwrite=True)
    except BaseException:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{traceback.format_exc()}\n--- engine's output (end) ---\n{tail}") from None
    wall = time.perf_counter() - start
    run_dir = Path(result.run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    resolved = json.loads((run_dir / "task.json").read_text())
    augmented = manifest.get("augmentation")
    train_rows = augmented[-1]["rows_out"] if augmented else rows
    record = {"metrics": result.metrics["test"], "wall_seconds": round(wall, 1),
              "train_seconds": manifest["training_time"]["seconds"], "train_rows": train_rows,
              "steps": manifest["steps"], "epochs": round(manifest["training_time"]["samples"] / train_rows, 2),
              "settings": {"model": resolved["model"]["name"], "epochs": resolved["training"]["epochs"],
                           "min_steps": resolved["training"]["min_steps"],
                           "batch_size": resolved["training"]["batch_size"],
                           "optimizer": resolved["optimizer"], "scheduler": resolved["scheduler"],
                           "head": resolved["head"], "freeze": resolved.get("freeze"),
                           "augment": resolved.get("augment", [])}}
    if augmented:
        record["augmentation"] = augmented
    shutil.rmtree(run_dir, ignore_errors=True)
    return record


# --- results -------------------------------------------------------------------------------------------------


class Results:
    """The JSON file: every finished run, and the throughput; rewritten whole (atomically) after each run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"runs": [], "throughput": {}, "carve": {}, "meta": {}}
        if path.exists():
            self.data.update(json.loads(path.read_text()))

    @staticmethod
    def key(dataset: str, size: int, spec: str, seed: int, carve: str) -> str:
        return f"{dataset}|{size}|{spec}|{seed}|{carve}"

    def done(self) -> set[str]:
        return {r["key"] for r in self.data["runs"]}

    def add_run(self, record: dict[str, Any]) -> None:
        self.data["runs"].append(record)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
        os.replace(partial, self.path)


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def engine_source() -> str:
    import engine

    root = Path(engine.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"{root} at commit {commit}" + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"{root} (not a git checkout)"


# --- throughput ----------------------------------------------------------------------------------------------


def throughput(registry: Any, data_dir: Path, rows: int = 10_000) -> dict[str, Any]:
    """Sentences/s of each registered lexical augmentation (and each that declares the tokens shape and needs no
    model, on CoNLL sentences), calling its factory directly: build once, then apply to ``rows`` rows, best of 3."""
    lines = (data_dir / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1 : rows + 1]
    single = [{"text": " ".join(s.split()), "label": label.strip()}
              for s, label in (line.rsplit("\t", 1) for line in lines)]
    blocks = conll_sentences(data_dir / "conll2003" / "train.txt")[:rows]
    tokens = [{"text": [line.split()[0] for line in b], "label": [line.split()[-1] for line in b]} for b in blocks]
    out: dict[str, Any] = {}
    for name in TAGGING:
        component = registry.find("augment", name)
        if component is None:
            continue
        shapes = getattr(component, "shapes", None)
        inputs = [("sst2", single)] if name in LEXICAL and (shapes is None or "single" in shapes) else []
        if shapes is not None and "tokens" in shapes:
            inputs.append(("conll", tokens))
        for dataset, data in inputs:
            try:
                start = time.perf_counter()
                options = component.options() if component.options is not None else None
                apply = component.build(options)
                built = time.perf_counter() - start
                times = []
                for attempt in range(3):
                    start = time.perf_counter()
                    produced = apply([dict(r) for r in data], random.Random(attempt))
                    times.append(time.perf_counter() - start)
            except Exception as exc:  # an augmentation still being built: say so, measure the others
                out[f"{name}|{dataset}"] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            words = statistics.mean(len(r["text"] if dataset == "conll" else r["text"].split()) for r in data)
            out[f"{name}|{dataset}"] = {
                "augmentation": name, "dataset": dataset, "sentences": len(data), "mean_words": round(words, 1),
                "options": options.model_dump(mode="json") if options is not None else {},
                "build_seconds": round(built, 3), "seconds": round(min(times), 4),
                "sentences_per_second": round(len(data) / min(times)), "rows_out": len(produced)}
            print(f"throughput {name} on {dataset}: {len(data) / min(times):,.0f} sentences/s "
                  f"(build {built:.2f} s)", flush=True)
    return out


# --- the table -----------------------------------------------------------------------------------------------


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def fmt(value: float, digits: int = 4) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def paired_gain(done: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]], metric: str) -> str:
    """Mean ± standard deviation over seeds of the per-seed difference to ``base`` ("" if no seed is in both)."""
    gains = gain_values(done, base, metric)
    return f"{statistics.mean(gains):+.4f} ± {fmt(mean_std(gains)[1])} (n={len(gains)})" if gains else ""


def gain_values(done: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]], metric: str) -> list[float]:
    """Per seed in both (a cell is not compared with itself), the cell's metric minus ``base``'s."""
    return [done[s]["metrics"][metric] - base[s]["metrics"][metric] for s in done
            if s in base and done[s] is not base[s]]


def write_table(results: Results, cells: list[Cell], seeds: list[int], skipped: list[str], carves: dict[str, str],
                command: str, output: Path) -> None:
    runs = results.data["runs"]
    by_cell: dict[tuple[str, int, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in runs:
        by_cell[(r["dataset"], r["size"], r["spec"], r["carve"])][r["seed"]] = r
    meta, carve = results.data["meta"], results.data["carve"]
    sst, conll = carve.get("sst2", {}), carve.get("conll", {})
    settings = meta.get("settings", {})
    described = "; ".join(
        f"{name}: model `{s['model']}`, {s['epochs']} epochs (training.min_steps {s.get('min_steps', 0)}), batch "
        f"{s['batch_size']}, optimizer "
        f"`{json.dumps(s['optimizer'])}`, scheduler `{json.dumps(s['scheduler'])}`, head `{json.dumps(s['head'])}`, "
        f"freeze `{json.dumps(s['freeze'])}`" for name, s in settings.items()) or "as resolved by engine"
    lines = [
        "# Augmentation: does it help fine-tuning? (SST-2 and CoNLL-2003, paired seeds, "
        f"{DEFAULTS_IN_USE.title})",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}`. Every cell: "
        "`python bench/augmentation.py` (resumable: it runs what the JSON lacks, then writes this file).",
        f"Machine: {meta.get('machine', machine())}; shared with other work, so the seconds are indicative only.",
        f"engine: {meta.get('engine', '?')}.",
        "",
        f"Settings ({DEFAULTS_IN_USE.described}), as resolved: {described}; "
        "`training.seed` = the seed; the HTML report off. The held-out part is the run's `test` data, "
          "evaluated once after the last epoch (no validation split: no checkpoint selection).",
        "",
        "## Held-out parts",
        "",
    ]
    if sst:
        lines += [
            f"- **SST-2** (metric: accuracy). sst2/train.tsv has {sst['rows']:,} rows, {sst['unique']:,} distinct "
            f"texts ({sst['conflicting']} with both labels, dropped). {sst['phrases']:,} of them are word spans "
            f"(phrases) of a longer row, so a random split would train on phrases of the held-out sentences. The "
            f"{sst['sentences']:,} rows that are no span of another row are the full sentences. Held out: "
            f"{sst['heldout']:,} of them (seed {CARVE_SEED}; {sst['heldout_positive']} positive; mean "
            f"{sst['heldout_mean_words']} words). Training subsets come only from the other full sentences, less "
            f"{sst['near_duplicates_dropped']} that share a {NGRAM}-word sequence with a held-out sentence (the same "
            f"review sentence with other punctuation or tokenization): a pool of {sst['pool']:,} sentences "
            f"({sst['pool_positive']:,} positive, mean {sst['pool_mean_words']} words). No phrase row is ever "
            "trained on. Seed s's subset of size n is the first n of its own shuffle of the pool.",
        ]
    if conll:
        lines += [
            f"- **CoNLL-2003** (metric: entity F1, micro, strict spans). Held out: the first {conll['heldout']:,} "
            f"sentences of conll2003/valid.txt ({conll['heldout_entities']:,} entities; other articles than "
            f"train.txt). Seed s trains on its own {CONLL_FRACTION:.0%} sample of train.txt's {conll['pool']:,} "
            f"sentences ({conll['sample']} sentences).",
        ]
    lines += [
        "",
        "## Augmentation settings",
        "",
        "EDA's recommended parameters for the training size (Wei & Zou 2019, Table 3): alpha 0.05 and n_aug 16 at "
        "500 sentences or fewer, alpha 0.05 and n_aug 8 up to 2,000. A single augmentation keeps the originals and "
        "adds one augmented copy of each (alpha the share of words changed); the combination chains the "
        "augmentations, each keeping its input and adding copies of a share q of it, q chosen so that the copies "
        "per original, (1 + q)^k - 1, come near n_aug (15 at n_aug 16; 8 at n_aug 8). A later step also edits "
        "earlier copies (EDA applies one operation per copy). The chains as run:",
        "",
    ]
    seen_specs = set()
    for cell in cells:
        if cell.augment and (cell.dataset, cell.size, cell.spec) not in seen_specs:
            seen_specs.add((cell.dataset, cell.size, cell.spec))
            note = f" ({cell.note})" if cell.note else ""
            lines.append(f"- {cell.dataset} {cell.size}, {cell.name}: `{json.dumps(cell.augment)}`{note}")
    lines += [
        "",
        "## Results",
        "",
        f"Mean and standard deviation over seeds ({', '.join(map(str, seeds))}); gain: per seed, the cell's "
        "metric minus plain's on the same training subset, then mean ± standard deviation over the seeds both "
        "finished. *Gain vs rows ×k*: the same against the control `plain, rows ×k`, plain training on the same "
        "subset with every row written k times, k the augmented run's rows per original: as many rows and "
        "optimizer steps as the augmented run (under 0.2's defaults engine trains 3 epochs whatever the data size, "
        "so an augmentation that doubles the rows also doubles the steps, which alone lifts a small, unconverged "
        "run; under today's defaults a floor of 300 steps, in whole epochs, gives a small set's plain and augmented "
        "runs about the same steps: see the steps column). "
        "Train rows: after augmentation. Seconds: training only (engine's clock), mean per run; wall: the whole "
        "`engine.train` call (loading, tokenizing, evaluation, saving).",
        "",
        "| dataset | size | augmentation | metric | mean | std | gain vs plain | gain vs rows ×k | seeds done | "
        "train rows | steps | train s | wall s |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    remaining, best = [], {}
    for cell in cells:
        done = {s: r for s, r in by_cell.get((cell.dataset, cell.size, cell.spec, carves[cell.dataset]), {}).items()
                if s in seeds}
        plain = by_cell.get((cell.dataset, cell.size, "[]", carves[cell.dataset]), {})
        control = by_cell.get((cell.dataset, cell.size, json.dumps({"repeat": cell.control}),
                               carves[cell.dataset]), {}) if cell.control else {}
        metric = METRIC[cell.dataset]
        if len(done) < len(seeds):
            remaining.append(f"{cell.dataset} {cell.size} {cell.name}: seeds "
                             f"{', '.join(str(s) for s in seeds if s not in done)}")
        if not done:
            lines.append(f"| {cell.dataset} | {cell.size:,} | {cell.name} | {metric} | | | | | 0/{len(seeds)} | | | | |")
            continue
        values = [r["metrics"][metric] for r in done.values()]
        mean, std = mean_std(values)
        gain, against = paired_gain(done, plain, metric), paired_gain(done, control, metric)
        gains = gain_values(done, plain, metric)
        leader = best.get((cell.dataset, cell.size))
        if cell.augment and gains and (leader is None or statistics.mean(gains) > leader[1]):
            best[(cell.dataset, cell.size)] = (cell.name, statistics.mean(gains), mean_std(gains)[1], len(gains),
                                               len(seeds), paired_gain(done, control, metric), cell.control)
        if cell.control:
            against = f"×{cell.control}: {against}" if against else f"×{cell.control}: not run"
        rows = statistics.mean(r["train_rows"] for r in done.values())
        counted = [r["steps"] for r in done.values() if "steps" in r]  # runs of before it was recorded lack it
        steps = f"{statistics.mean(counted):,.0f}" if counted else "–"
        train_s = statistics.mean(r["train_seconds"] for r in done.values())
        wall_s = statistics.mean(r["wall_seconds"] for r in done.values())
        lines.append(f"| {cell.dataset} | {cell.size:,} | {cell.name} | {metric} | {mean:.4f} | {fmt(std)} | {gain} | {against} | "
                     f"{len(done)}/{len(seeds)} | {rows:,.0f} | {steps} | {train_s:.0f} | {wall_s:.0f} |")
    if best:
        lines += ["", "Best augmentation per training size, by mean gain over plain (whatever its sign):", ""]
        for (dataset, size), (name, gain, std, n, of, against, k) in best.items():
            lines.append(f"- {dataset} {size:,}: **{name}**, {gain:+.4f} ± {fmt(std)} {METRIC[dataset]} over plain "
                         f"({n} of {of} seeds)" + (f"; {against} over its control `plain, rows ×{k}`" if against else ""))
    throughput_rows = [t for t in results.data["throughput"].values() if "sentences_per_second" in t]
    if throughput_rows or results.data["throughput"]:
        lines += ["", "## Throughput", "",
                  "Each augmentation's factory called directly (no engine run): built once, then applied to the "
                  "sentences with its default options (`keep_original` off: one output row per input), best of 3.",
                  "", "| augmentation | data | sentences | mean words | sentences/s | build s |",
                  "|---|---|---:|---:|---:|---:|"]
        for t in throughput_rows:
            lines.append(f"| {t['augmentation']} | {t['dataset']} | {t['sentences']:,} | {t['mean_words']} | "
                         f"{t['sentences_per_second']:,} | {t['build_seconds']:.2f} |")
        for name, t in results.data["throughput"].items():
            if "error" in t:
                lines.append(f"| {name.replace('|', ' | ')} | failed: {t['error']} | | | |")
    lines += ["", "## Not run", ""]
    lines += [f"- skipped: {s}" for s in skipped] or ["- nothing skipped"]
    lines += [f"- not finished yet: {r}" for r in remaining] or ["- every planned run finished"]
    stale = sum(1 for r in runs if (r["dataset"], r["size"], r["spec"], r["carve"]) not in
                {(c.dataset, c.size, c.spec, carves[c.dataset]) for c in cells})
    if stale:
        lines.append(f"- {stale} run(s) in the JSON belong to other settings (another chain, size or held-out "
                     "part, or an earlier version of an augmentation's code) and are not in this table.")
    shown = {(c.dataset, c.size, c.spec, carves[c.dataset]) for c in cells}
    sources: dict[str, int] = defaultdict(int)
    for r in runs:
        if (r["dataset"], r["size"], r["spec"], r["carve"]) in shown:
            sources[r.get("engine", "not recorded")] += 1
    if sources:
        lines += ["", "Runs in the table by the engine they ran on: " + "; ".join(
            f"{source}: {count}" for source, count in sorted(sources.items())) + "."]
    output.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- main ----------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with sst2/train.tsv and conll2003/{train,valid}.txt (default: ../shared/data)")
    parser.add_argument("--dataset", choices=["sst2", "conll", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000], help="SST-2 training sentences")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="augmentations to run: names, 'combination', 'repeat' (the plain controls with rows "
                             "repeated); plain always runs")
    parser.add_argument("--heldout", type=int, default=1000, help="held-out sentences (SST-2 and CoNLL)")
    parser.add_argument("--contextual", metavar="JSON", help="contextual_substitution's options, e.g. a local MLM "
                        "folder: '{\"model\": \"/path/to/bert-base-uncased\"}'")
    parser.add_argument("--back-translation", metavar="JSON", help="back_translation's options, e.g. the two "
                        "sequence-to-sequence folders (see `engine schema` for the option names)")
    parser.add_argument("--defaults", choices=sorted(DEFAULTS), default="0.2",
                        help="the training defaults: '0.2' (3 epochs whatever the size; the first table) or "
                             "'current' (engine's defaults today: a floor of 300 steps). 'current' writes to "
                             "bench/results/augmentation_current.json unless --results says otherwise")
    parser.add_argument("--max-minutes", type=float, help="start no run after this many minutes")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput measurement")
    parser.add_argument("--table-only", action="store_true", help="write the table from the JSON; train nothing")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: seed 1, 100 sentences, 200 held out; results under /tmp, not bench/results")
    parser.add_argument("--results", type=Path, help="JSON of the runs (default bench/results/augmentation.json); "
                        "the table goes next to it as .md")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.sizes, args.heldout = [1], [100], 200
        args.results = args.results or WORK / "quick" / "augmentation.json"
    global DEFAULTS_IN_USE
    DEFAULTS_IN_USE = DEFAULTS[args.defaults]
    results_path = args.results or RESULTS / ("augmentation.json" if args.defaults == "0.2"
                                              else f"augmentation_{args.defaults}.json")
    command = "python bench/augmentation.py " + " ".join(sys.argv[1:])

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ENGINE_CACHE", str(WORK / "cache"))  # draws and copies: keep them out of the user's cache
    WORK.mkdir(parents=True, exist_ok=True)
    global SCRATCH
    SCRATCH = Path(tempfile.mkdtemp(prefix="invocation-", dir=WORK))
    results_path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(str(results_path.resolve()).encode()).hexdigest()[:12]
    with (WORK / f"results-{digest}.lock").open("w") as lock:
        try:  # one invocation at a time per results file: each rewrites the whole JSON after every run
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another bench/augmentation.py is writing {results_path}; wait for it") from None
        try:
            bench(args, results_path, command)
        finally:
            shutil.rmtree(SCRATCH, ignore_errors=True)


def bench(args: argparse.Namespace, results_path: Path, command: str) -> None:
    from engine.api.plugins import plugin_manager

    registry = plugin_manager().registry()
    print(f"augmentations registered: {', '.join(registry.names('augment'))}", flush=True)
    model_options = {"contextual_substitution": json.loads(args.contextual) if args.contextual else None,
                     "back_translation": json.loads(args.back_translation) if args.back_translation else None}
    only = set(args.only) if args.only else None
    datasets = ["sst2", "conll"] if args.dataset == "all" else [args.dataset]

    results = Results(results_path)
    carves: dict[str, Any] = {}
    signatures = {"sst2": f"sst2:sentences:heldout{args.heldout}:seed{CARVE_SEED}:ngram{NGRAM}",
                  "conll": f"conll:valid-first{args.heldout}:train{CONLL_FRACTION}"}
    if args.defaults != "0.2":  # runs under other defaults never count as the first table's, whatever the file
        signatures = {name: f"{signature}:defaults-{args.defaults}" for name, signature in signatures.items()}
    cells: list[Cell] = []
    skipped: list[str] = []
    for dataset in datasets:
        start = time.perf_counter()
        carves[dataset] = (carve_sst2 if dataset == "sst2" else carve_conll)(args.data, args.heldout)
        results.data["carve"][dataset] = carves[dataset].stats
        print(f"{dataset}: held-out part carved in {time.perf_counter() - start:.1f} s: "
              f"{json.dumps(carves[dataset].stats)}", flush=True)
        sizes = args.sizes if dataset == "sst2" else [100 if args.quick else carves[dataset].stats["sample"]]
        for size in sizes:
            planned, why = plan_cells(dataset, size, registry, model_options, only)
            cells += planned
            skipped += why
    source = engine_source()
    results.data["meta"].update({"machine": machine(), "engine": source})
    results.save()
    for line in skipped:
        print(f"skipped: {line}", flush=True)

    if not args.table_only and not args.no_throughput and not args.quick:
        results.data["throughput"].update(throughput(registry, args.data))
        results.save()

    began, stopped = time.perf_counter(), False
    if not args.table_only:
        done = results.done()
        folder = SCRATCH / "runs"
        for dataset in datasets:
            carve = carves[dataset]
            test = (write_tsv(carve.heldout, folder / "sst2-heldout.tsv") if dataset == "sst2"
                    else write_conll(carve.heldout, folder / "conll-heldout.conll"))
            for size in sorted({c.size for c in cells if c.dataset == dataset}):
                for seed in args.seeds:
                    todo = [c for c in cells if c.dataset == dataset and c.size == size
                            and Results.key(dataset, size, c.spec, seed, signatures[dataset]) not in done]
                    if not todo:
                        continue
                    draw = carve.draw(seed, size)
                    for cell in todo:
                        name = f"{dataset}-{size}-seed{seed}-x{cell.repeat}"
                        train = (write_tsv(draw * cell.repeat, folder / f"{name}.tsv") if dataset == "sst2"
                                 else write_conll(draw * cell.repeat, folder / f"{name}.conll"))
                        if args.max_minutes is not None and time.perf_counter() - began > 60 * args.max_minutes:
                            stopped = True
                            break
                        task = task_for(dataset, train, test, seed, cell.augment)
                        try:
                            record = train_one(task, folder / "run", len(draw) * cell.repeat)
                        except RuntimeError as exc:
                            print(f"FAILED {dataset} {size} {cell.name} seed {seed}:\n{exc}", flush=True)
                            continue
                        finally:
                            gc.collect()
                        key = Results.key(dataset, size, cell.spec, seed, signatures[dataset])
                        settings = record.pop("settings")
                        results.data["meta"].setdefault("settings", {}).setdefault(
                            dataset, {k: v for k, v in settings.items() if k != "augment"})
                        results.add_run({"key": key, "dataset": dataset, "size": size, "cell": cell.name,
                                         "spec": cell.spec, "seed": seed, "carve": signatures[dataset],
                                         "augment_resolved": settings["augment"],
                                         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "engine": source,
                                         **record})
                        metric = METRIC[dataset]
                        print(f"{dataset} {size:>5} {cell.name:<20} seed {seed}: {metric} "
                              f"{record['metrics'][metric]:.4f}  ({record['train_rows']:,} rows, train "
                              f"{record['train_seconds']:.0f} s, wall {record['wall_seconds']:.0f} s)", flush=True)
                    if stopped:
                        break
                if stopped:
                    break
            if stopped:
                break
        if stopped:
            print(f"--max-minutes {args.max_minutes} reached: stopped; rerun to continue", flush=True)

    output = results_path.with_suffix(".md")
    write_table(results, cells, args.seeds, skipped, signatures, command, output)
    print(f"\n{output}:\n{output.read_text()}")


if __name__ == "__main__":
    main()
