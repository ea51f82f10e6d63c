"""Fixtures for testing engine plugins, loaded by pytest automatically wherever engine is installed.

``tiny_model_dir``  a tiny random BERT with a WordPiece tokenizer, saved locally (seconds, no downloads)
``write_task``      writes a task.json (and any data files) into a temporary folder and returns its path
``run_engine``      runs the ``engine`` CLI in-process: ``run_engine("run", task_path)`` -> ``Result``
``tiny_task``       writes a small labelled train/validation set and a task.json on ``tiny_model_dir``:
                    ``tiny_task(head="attention_pooling")`` -> the task file's path (runs to ``runs/tiny``)
``plugin_manager``  a ``PluginManager`` with the built-ins, to which a test adds its own plugin module

and functions:

``engine_process(*args, cwd=None, env=None, timeout=600)``  runs ``python -m engine ARGS`` in a fresh interpreter,
                    as a user does (offline; installed plugins only as ``ENGINE_PLUGINS`` names them, none by
                    default); returns the ``subprocess.CompletedProcess`` with text output
``build_tiny_model(directory, *, hidden_size=32, layers=2, seed=0, dropout=0.1)``  what ``tiny_model_dir`` builds
``labelled_rows(labels, n, seed)``, ``tsv(rows)``  the rows ``tiny_task`` writes, and them as TSV text

docs/plugins.md ("Testing a plugin") documents each with its arguments.

A plugin's tests typically write a task that names ``tiny_model_dir`` as the model and the plugin's components,
then ``run_engine("run", ...)`` and inspect the run directory. Which installed plugins those runs load follows
``ENGINE_PLUGINS``: pin it to your own plugin in your conftest.py so other installed plugins stay out.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

WORDS = [
    "the", "a", "an", "and", "or", "but", "not", "no", "is", "was", "are", "were", "be", "been", "it", "this",
    "that", "these", "those", "i", "you", "he", "she", "we", "they", "my", "your", "his", "her", "our", "their",
    "of", "to", "in", "on", "at", "for", "with", "from", "by", "as", "about", "into", "over", "after", "before",
    "good", "bad", "great", "terrible", "awesome", "awful", "love", "loved", "hate", "hated", "like", "liked",
    "best", "worst", "nice", "poor", "excellent", "boring", "fun", "funny", "movie", "film", "phone", "food",
    "place", "service", "product", "story", "plot", "acting", "quality", "price", "time", "day", "night", "very",
    "really", "so", "too", "quite", "more", "most", "less", "least", "just", "john", "paul", "mary", "london",
    "paris", "berlin", "google", "apple", "microsoft", "new", "york", "city", "company", "people", "year", "years",
    "one", "two", "three"
]


def build_tiny_model(directory: Path, *, hidden_size: int = 32, layers: int = 2, seed: int = 0,
                     dropout: float = 0.1) -> Path:
    """Save a randomly initialised BERT (2 layers, hidden 32) and its WordPiece tokenizer to ``directory``.

    ``dropout=0`` makes training deterministic given the batches, for comparing runs that draw random numbers
    differently (one process against several).
    """
    import torch
    from transformers import (  # type: ignore[attr-defined,unused-ignore]  # BertTokenizerFast is exported lazily
        BertConfig,
        BertModel,
        BertTokenizerFast,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    directory.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *WORDS]
    vocab = list(dict.fromkeys(vocab))
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True,
                                  model_max_length=128)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden_size * 2, max_position_embeddings=128, type_vocab_size=2,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def engine_process(*args: Any, cwd: str | Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m engine ARGS`` in a fresh interpreter, offline, with no installed plugin unless ``env`` names one."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def run_engine(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    from engine.cli.commands import main

    def run(*args: Any) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def write_task(tmp_path: Path) -> Callable[..., Path]:
    def write(task: dict[str, Any], files: dict[str, str] | None = None, name: str = "task.json") -> Path:
        for rel, content in (files or {}).items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        path = tmp_path / name
        path.write_text(json.dumps(task, indent=2), encoding="utf-8")
        return path

    return write


# One word per label, so the tiny model can tell labels apart: the rest of each text is filler.
CUE_WORDS = ["awful", "bad", "boring", "nice", "good", "great", "excellent", "awesome"]
FILLER = ["the", "movie", "film", "phone", "food", "place", "service", "was", "is", "very", "really", "this", "it"]


def labelled_rows(labels: list[str], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (text, label) pairs cycling through ``labels``; each label's texts carry a word of their own."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = i % len(labels)
        words = [*rng.sample(FILLER, rng.randint(2, 6)), CUE_WORDS[k % len(CUE_WORDS)]]
        rng.shuffle(words)
        rows.append((" ".join(words), labels[k]))
    return rows


def tsv(rows: list[tuple[str, str]]) -> str:
    return "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows)


@pytest.fixture
def tiny_task(write_task: Callable[..., Path], tiny_model_dir: Path) -> Callable[..., Path]:
    def make(task: Any = "classification", labels: list[str] | tuple[str, ...] = ("negative", "positive"), *,
             rows: int = 32, **sections: Any) -> Path:
        config: dict[str, Any] = {
            "task": task,
            "model": {"name": str(tiny_model_dir)},
            "data": {"train": "train.tsv", "validation": "validation.tsv"},
            "training": {"epochs": 1, "batch_size": 8, "seed": 13},
            "output_dir": "runs/tiny",
            **sections,
        }
        files = {"train.tsv": tsv(labelled_rows(list(labels), rows, 1)),
                 "validation.tsv": tsv(labelled_rows(list(labels), max(rows // 2, len(labels)), 2))}
        return write_task(config, files)

    return make


@pytest.fixture
def plugin_manager(monkeypatch: pytest.MonkeyPatch) -> Any:
    from engine.plugins.manager import PluginManager

    monkeypatch.setenv("ENGINE_PLUGINS", "")
    manager = PluginManager()
    manager.load_entry_points()
    return manager
