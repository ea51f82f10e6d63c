"""A three-task run on the tiny random BERT: classification (texts and labels), tagging with the CRF head (CoNLL)
and regression (texts and scores), made once per session."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.testing import labelled_rows

PEOPLE, PLACES, FILLER = ["john", "paul", "mary"], ["london", "paris", "berlin"], ["the", "a", "good", "film", "was"]


@dataclass
class Trained:
    folder: Path
    run_dir: Path
    result: Any


def table(header: list[str], rows: list[tuple]) -> str:
    return "\t".join(header) + "\n" + "".join("\t".join(map(str, row)) + "\n" for row in rows)


def tagged(n: int, seed: int) -> str:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = [(rng.choice(PEOPLE), "B-PER") if rng.random() < 0.3 else
                 (rng.choice(PLACES), "B-LOC") if rng.random() < 0.3 else (rng.choice(FILLER), "O")
                 for _ in range(rng.randint(3, 8))]
        sentences.append("".join(f"{w}\t{t}\n" for w, t in words))
    return "\n".join(sentences)


def scored(n: int, seed: int) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(FILLER + PEOPLE, rng.randint(2, 6))
        rows.append((" ".join(words), round(sum(w in PEOPLE for w in words) + rng.random(), 2)))
    return rows


def write_data(folder: Path) -> None:
    labels = ["bad", "good", "great"]
    files = {
        "cls_train.tsv": table(["text", "label"], labelled_rows(labels, 30, 1)),
        "cls_dev.tsv": table(["text", "label"], labelled_rows(labels, 9, 2)),
        "tag_train.conll": tagged(20, 1), "tag_dev.conll": tagged(8, 2),
        "reg_train.tsv": table(["text", "score"], scored(16, 1)),
        "reg_dev.tsv": table(["text", "score"], scored(8, 2)),
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def three_tasks(model_dir: Path, **training: Any) -> dict[str, Any]:
    """The task file: three tasks on one encoder; ``training`` over the defaults below."""
    return {
        "model": {"name": str(model_dir)},
        "tasks": {
            "sentiment": {"task": "classification", "data": {"train": "cls_train.tsv", "validation": "cls_dev.tsv"},
                          "metrics": ["accuracy"]},
            "entities": {"task": "tagging", "data": {"format": "conll", "train": "tag_train.conll",
                                                     "validation": "tag_dev.conll", "separator": "\t",
                                                     "benchmark": "conll2003"}},
            "score": {"task": "regression", "data": {"train": "reg_train.tsv", "validation": "reg_dev.tsv",
                                                     "label": "score"}, "weight": 0.5},
        },
        "training": {"epochs": 2, "batch_size": 8, "seed": 3, **training},
        "output_dir": "run",
    }


def train_in(folder: Path, task: dict[str, Any], **kwargs: Any) -> Trained:
    write_data(folder)
    (folder / "task.json").write_text(json.dumps(task), encoding="utf-8")
    result = engine.train(folder / "task.json", **kwargs)
    return Trained(folder, folder / "run", result)


@pytest.fixture(scope="session")
def three_task_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return train_in(tmp_path_factory.mktemp("multitask"), three_tasks(tiny_model_dir))


@pytest.fixture
def multitask_files(tiny_model_dir: Path) -> Any:
    """``(folder, **training) -> task file``: writes the three tasks' data in ``folder`` and returns their task file
    (for tests that run it themselves: test modules here cannot import this one)."""

    def make(folder: Path, **training: Any) -> dict[str, Any]:
        write_data(folder)
        return three_tasks(tiny_model_dir, **training)

    return make


def close(a: Any, b: Any, tolerance: float = 1e-5) -> None:
    """Records equal, their floats within ``tolerance``, through nested dicts and lists."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            close(a[key], b[key], tolerance)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y, tolerance)
    elif isinstance(a, float):
        assert a == pytest.approx(b, abs=tolerance)
    else:
        assert a == b


@pytest.fixture
def assert_close() -> Any:
    """``(a, b)``: records equal, their floats within 1e-5 (predictions of two ways of loading one model)."""
    return close
