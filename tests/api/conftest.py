"""Runs trained through ``engine.train`` on the tiny model, one per built-in task and one for the example plugin's
task, each with the data it was trained on: made once per session, when a test asks for one."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import engine
from engine.testing import labelled_rows

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugin" / "src"
PEOPLE, PLACES, FILLER = ["john", "paul", "mary"], ["london", "paris", "berlin"], ["the", "a", "good", "film", "was"]


@dataclass
class Trained:
    folder: Path  # the task file's folder, with its data files
    run_dir: Path
    result: engine.RunResult


def train(folder: Path, task: dict, files: dict[str, str]) -> Trained:
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "task.json").write_text(json.dumps({"output_dir": "run", **task}), encoding="utf-8")
    result = engine.train(folder / "task.json")
    return Trained(folder, folder / "run", result)


def text_table(header: list[str], rows: list[tuple]) -> str:
    return "\t".join(header) + "\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows)


@pytest.fixture(scope="session")
def classification_run(tiny_model_dir, tmp_path_factory) -> Trained:
    """Texts in a column named ``sentence``, labels in ``label``."""
    labels = ["bad", "good", "great"]
    return train(tmp_path_factory.mktemp("classification"), {
        "task": "classification", "model": {"name": str(tiny_model_dir)},
        "data": {"train": "train.tsv", "validation": "dev.tsv", "text": "sentence"},
        "training": {"epochs": 2, "batch_size": 8, "seed": 3}, "metrics": ["accuracy", "f1_macro"],
    }, {"train.tsv": text_table(["sentence", "label"], labelled_rows(labels, 36, 1)),
        "dev.tsv": text_table(["sentence", "label"], labelled_rows(labels, 15, 2))})


def pair_rows(n: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        first = rng.sample(FILLER + PEOPLE, rng.randint(2, 6))
        second = rng.sample(FILLER + PLACES, rng.randint(1, 8))
        rows.append((" ".join(first), " ".join(second), round(len(set(first) & set(second)) + rng.random(), 2)))
    return rows


@pytest.fixture(scope="session")
def regression_run(tiny_model_dir, tmp_path_factory) -> Trained:
    """Pairs of texts (``sentence1``, ``sentence2``) and a ``score``."""
    header = ["sentence1", "sentence2", "score"]
    return train(tmp_path_factory.mktemp("regression"), {
        "task": "regression", "model": {"name": str(tiny_model_dir)},
        "data": {"train": "train.tsv", "validation": "dev.tsv", "text": ["sentence1", "sentence2"], "label": "score"},
        "training": {"epochs": 2, "batch_size": 8, "seed": 3},
    }, {"train.tsv": text_table(header, pair_rows(32, 1)), "dev.tsv": text_table(header, pair_rows(12, 2))})


def sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for _ in range(rng.randint(3, 9)):
        r = rng.random()
        if r < 0.2:
            tokens.append(rng.choice(PEOPLE)), tags.append("B-PER")
        elif r < 0.35:
            tokens.extend(["new", "york"]), tags.extend(["B-LOC", "I-LOC"])
        elif r < 0.5:
            tokens.append(rng.choice(PLACES)), tags.append("B-LOC")
        else:
            tokens.append(rng.choice(FILLER)), tags.append("O")
    return tokens, tags


def conll(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "\n".join("".join(f"{t}\t{g}\n" for t, g in zip(*sentence(rng))) for _ in range(n))


@pytest.fixture(scope="session")
def tagging_run(tiny_model_dir, tmp_path_factory) -> Trained:
    """CoNLL data, the CRF head (tagging's default)."""
    return train(tmp_path_factory.mktemp("tagging"), {
        "task": "tagging", "model": {"name": str(tiny_model_dir)},
        "data": {"format": "conll", "train": "train.conll", "validation": "dev.conll", "separator": "\t"},
        "training": {"epochs": 2, "seed": 3}, "optimizer": {"name": "adamw", "lr": 3e-3, "head_lr": 1e-2},
    }, {"train.conll": conll(80, 1), "dev.conll": conll(16, 2)})


@pytest.fixture(scope="module")
def ordinal_run(tiny_model_dir, tmp_path_factory) -> Iterator[Trained]:
    """The example plugin's ordinal task and attention-pooling head, the plugin named by the task file and found
    on the import path (for this module's tests only)."""
    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    levels = ["1", "2", "3"]
    yield train(tmp_path_factory.mktemp("ordinal"), {
        "task": "ordinal", "plugins": ["engine_ordinal"], "model": {"name": str(tiny_model_dir)},
        "data": {"train": "train.tsv", "validation": "dev.tsv"}, "head": {"name": "attention_pooling"},
        "metrics": ["qwk", "rank_mae"], "training": {"epochs": 2, "batch_size": 8, "seed": 3},
    }, {"train.tsv": text_table(["text", "label"], labelled_rows(levels, 24, 1)),
        "dev.tsv": text_table(["text", "label"], labelled_rows(levels, 9, 2))})
    sys.path.remove(str(EXAMPLE_PLUGIN))
    for name in [name for name in sys.modules if name.split(".")[0] == "engine_ordinal"]:
        del sys.modules[name]
