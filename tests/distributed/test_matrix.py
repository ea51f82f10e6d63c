"""Every built-in task with every head that fits it, under every freezing strategy, and the example plugin's task
and head, trained by two processes (torchrun, gloo) and checked against one process.

For each configuration:

- the two-process run finishes (parameters a head or a freezing state leaves unused never stop DDP);
- the validation metrics it reports equal a one-process ``engine evaluate`` of the model it saved;
- with per-process batch B/2 it tracks a one-process run with batch B: the same global batches in the same order
  (the sampler shards each global batch), dropout off, so the two differ only by floating-point summation order
  (see TOLERANCE).

All two-process runs share one torchrun launch (tests/distributed/run_many.py) to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.testing import CUE_WORDS, FILLER, build_tiny_model

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "examples" / "plugin" / "src"
FREEZES = ["none", "embeddings", {"name": "layers", "n": 1}, "gradual"]
HEADS = {"classification": ["linear", "mlp"], "regression": ["linear", "mlp"], "tagging": ["crf", "softmax"]}
BATCH = 8  # the one-process batch; each of two processes takes 4
ROWS = 32  # whole global batches only: a short last batch is topped up under two processes (see the sampler)

# Largest difference allowed between the one- and two-process runs' weights after 12 steps at lr 1e-3. The same
# global batches, dropout off: only float summation order and padding lengths differ (measured: at most 2e-6, most
# near 1e-7). Token-level losses (tagging) average over each process's tokens; the engine weights each process's
# share by its token count (HeadOutput.loss_weight), without which they were 1e-3 apart.
TOLERANCE = 1e-5
# Parameters with no true gradient, whose updates are Adam's normalisation of float noise, so they differ by up to
# lr per step between any two summation orders: the attention scorer's output bias (a softmax ignores a shift).
NO_GRADIENT = {"head.score.2.bias"}


def freeze_name(freeze):
    return freeze if isinstance(freeze, str) else freeze["name"]


CONFIGS = {f"{task}-{head}-{freeze_name(freeze)}": (task, head, freeze)
           for task, heads in HEADS.items() for head in heads for freeze in FREEZES}
CONFIGS.update({f"ordinal-attention_pooling-{freeze_name(f)}": ("ordinal", "attention_pooling", f) for f in ("none", "gradual")})


def classification_rows(rng, n, labels=("negative", "positive")):
    rows = []
    for i in range(n):
        k = i % len(labels)
        words = [*rng.sample(FILLER, rng.randint(2, 8)), CUE_WORDS[k * 3 % len(CUE_WORDS)]]
        rng.shuffle(words)
        rows.append((" ".join(words), labels[k]))
    return "text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)


def regression_rows(rng, n):
    rows = []
    for _ in range(n):
        k = rng.randrange(len(CUE_WORDS))
        words = [*rng.sample(FILLER, rng.randint(2, 8)), CUE_WORDS[k]]
        rng.shuffle(words)
        rows.append((" ".join(words), k / 2))
    return "text\tscore\n" + "".join(f"{t}\t{y}\n" for t, y in rows)


def conll_rows(rng, n):
    names, cities = ["john", "paul", "mary"], ["london", "paris", "berlin"]
    sentences = []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(FILLER, rng.randint(2, 8))]
        words.insert(rng.randrange(len(words) + 1), (rng.choice(names), "B-PER"))
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words) + 1), (rng.choice(cities), "B-LOC"))
        sentences.append("".join(f"{w}\t{t}\n" for w, t in words))
    return "\n".join(sentences)


def write_config(folder: Path, model: Path, task: str, head: str, freeze) -> tuple[Path, Path, Path]:
    """Data and two task files (two processes at BATCH/2, one process at BATCH); returns them and the validation file."""
    rng = random.Random(7)
    folder.mkdir(parents=True)
    section: dict = {"task": task}
    if task == "tagging":
        data = {"format": "conll", "train": "train.conll", "validation": "validation.conll", "separator": "\t"}
        files = {"train.conll": conll_rows(rng, ROWS), "validation.conll": conll_rows(rng, 12)}
    elif task == "regression":
        data = {"train": "train.tsv", "validation": "validation.tsv", "label": "score"}
        files = {"train.tsv": regression_rows(rng, ROWS), "validation.tsv": regression_rows(rng, 12)}
    else:
        labels = ("1", "2", "3") if task == "ordinal" else ("negative", "positive")
        data = {"train": "train.tsv", "validation": "validation.tsv"}
        files = {"train.tsv": classification_rows(rng, ROWS, labels), "validation.tsv": classification_rows(rng, 12, labels)}
        if task == "ordinal":
            section["plugins"] = ["engine_ordinal"]
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    tasks = []
    for name, batch in (("two", BATCH // 2), ("one", BATCH)):
        config = {**section, "model": {"name": str(model)}, "data": data, "head": {"name": head, "dropout": 0.0},
                  "freeze": freeze, "optimizer": {"name": "adamw", "lr": 1e-3},
                  "training": {"epochs": 3, "batch_size": batch, "seed": 5}, "output_dir": f"runs/{name}"}
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        tasks.append(path)
    return tasks[0], tasks[1], folder / data["validation"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, torchrun):
    """Every configuration written and its two-process run done: {name: (two, one, validation, exit code, log)}."""
    root = tmp_path_factory.mktemp("matrix")
    model = build_tiny_model(root / "model", dropout=0.0)
    written = {name: write_config(root / name, model, *config) for name, config in CONFIGS.items()}
    codes_path = root / "exit_codes.json"
    result = torchrun(Path(__file__).parent / "run_many.py", codes_path, *(w[0] for w in written.values()),
                      env={"PYTHONPATH": os.pathsep.join([str(PLUGIN_SRC), os.environ.get("PYTHONPATH", "")])},
                      timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    codes = json.loads(codes_path.read_text())
    return {name: (*w, codes[str(w[0])], result.stderr) for name, w in written.items()}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model = run_dir / "model"
    return {**load_file(str(model / "model.safetensors")), **{f"head.{k}": v for k, v in load_file(str(model / "head.safetensors")).items()}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_processes_match_one(name, matrix, run_engine, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    two, one, validation, code, stderr = matrix[name]
    assert code == 0, f"the two-process run of {name} failed:\n{stderr[-3000:]}"
    two_dir = two.parent / "runs/two"
    assert json.loads((two_dir / "manifest.json").read_text())["status"] == "completed"
    reported = json.loads((two_dir / "metrics.json").read_text())["validation"]

    evaluated = run_engine("evaluate", two_dir, "--data", validation, "--output", two.parent / "evaluated.json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads((two.parent / "evaluated.json").read_text()) == pytest.approx(reported, rel=1e-4, abs=1e-5)

    result = run_engine("run", one)
    assert result.exit_code == 0, result.stderr
    one_dir = one.parent / "runs/one"
    two_weights, one_weights = weights(two_dir), weights(one_dir)
    assert two_weights.keys() == one_weights.keys()
    assert all(torch.equal(two_weights[k], v) for k, v in one_weights.items() if not v.is_floating_point())
    gap, where = max((float((two_weights[k] - v).abs().max()), k) for k, v in one_weights.items()
                     if v.is_floating_point() and k not in NO_GRADIENT)
    assert gap <= TOLERANCE, f"{name}: weights differ by {gap:.2e} ({where})"
    single = json.loads((one_dir / "metrics.json").read_text())["validation"]
    assert single == pytest.approx(reported, rel=1e-4, abs=1e-4)
    assert json.loads((two_dir / "manifest.json").read_text())["steps"] == json.loads((one_dir / "manifest.json").read_text())["steps"]
