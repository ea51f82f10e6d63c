"""Every built-in task and head trained on CUDA (bf16, the default there), then predicted and evaluated on CUDA and
on the CPU: the same labels and tags, numbers within float noise. Inference runs in the model's own fp32 on both.
"""

import json
import math
import random

import pytest
import torch

from engine.testing import labelled_rows, tsv

CPU_TOLERANCE = 1e-3  # |cuda - cpu| of any score, value or metric: fp32 both, kernels summing in other orders

NAMES = ["john", "mary", "paul"]
PLACES = ["london", "paris", "berlin"]
OTHER = ["the", "was", "good", "film", "here", "in", "city", "with", "very"]


def conll(n, seed):
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = [*rng.sample(OTHER, 4), rng.choice(NAMES), rng.choice(PLACES)]
        rng.shuffle(words)
        tags = ["B-PER" if w in NAMES else "B-LOC" if w in PLACES else "O" for w in words]
        sentences.append("".join(f"{w} {t}\n" for w, t in zip(words, tags)))
    return "\n".join(sentences)


def scores(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = rng.sample(["good", "great", "bad", "awful", "film", "the", "very", "was"], 4)
        rows.append((" ".join(words), f"{sum(w in ('good', 'great') for w in words) - sum(w in ('bad', 'awful') for w in words):.1f}"))
    return rows


def task_files(task):
    """The task file's task and data sections for ``task``, and its data files (train, validation)."""
    if task == "tagging":
        return ({"task": "tagging", "data": {"train": "train.conll", "validation": "validation.conll"}},
                {"train.conll": conll(48, 1), "validation.conll": conll(16, 2)}, "validation.conll")
    if task == "regression":
        return ({"task": "regression", "data": {"train": "train.tsv", "validation": "validation.tsv"}},
                {"train.tsv": tsv(scores(48, 1)), "validation.tsv": tsv(scores(16, 2))}, "validation.tsv")
    labels = ["negative", "neutral", "positive"]
    return ({"task": "classification", "data": {"train": "train.tsv", "validation": "validation.tsv"}},
            {"train.tsv": tsv(labelled_rows(labels, 48, 1)), "validation.tsv": tsv(labelled_rows(labels, 16, 2))},
            "validation.tsv")


@pytest.mark.parametrize(("task", "head"), [("classification", "linear"), ("classification", "mlp"),
                                            ("tagging", "crf"), ("tagging", "softmax"), ("regression", "linear")])
def test_every_task_and_head_trains_on_cuda_and_predicts_as_on_the_cpu(task, head, write_task, tiny_model_dir,
                                                                       engine_cli, assert_close_outputs):
    sections, files, data = task_files(task)
    path = write_task({**sections, "head": head, "model": {"name": str(tiny_model_dir)},
                       "training": {"epochs": 2, "batch_size": 8, "seed": 13}, "optimizer": {"lr": 2e-3},
                       "output_dir": "runs/gpu"}, files)
    result = engine_cli("run", path)
    assert result.exit_code == 0, result.stderr
    run = path.parent / "runs/gpu"
    metrics = json.loads((run / "metrics.json").read_text())["validation"]
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), metrics

    predicted, evaluated = {}, {}
    for device in ("cuda", "cpu"):
        result = engine_cli("predict", run, "--input", path.parent / data, cpu=device == "cpu")
        assert result.exit_code == 0, result.stderr
        predicted[device] = [json.loads(line) for line in result.stdout.splitlines()]
        output = path.parent / f"{device}-metrics.json"
        result = engine_cli("evaluate", run, "--data", path.parent / data, "--output", output, cpu=device == "cpu")
        assert result.exit_code == 0, result.stderr
        evaluated[device] = json.loads(output.read_text())
    assert len(predicted["cpu"]) == 16
    assert_close_outputs(predicted["cpu"], predicted["cuda"], CPU_TOLERANCE)
    assert_close_outputs(evaluated["cpu"], evaluated["cuda"], CPU_TOLERANCE)
    # engine evaluate scores the saved model as the run's last evaluation did, but in fp32 (the run: bf16 autocast)
    assert evaluated["cuda"]["loss"] == pytest.approx(metrics["loss"], rel=0.05, abs=0.05)


def test_int8_is_refused_on_cuda_and_serves_on_the_cpu(tiny_task, engine_cli):
    path = tiny_task(rows=32)
    assert engine_cli("run", path).exit_code == 0
    run, data = path.parent / "runs/tiny", path.parent / "validation.tsv"
    result = engine_cli("predict", run, "--input", data, "--quantize", "int8")
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "--quantize int8 is a CPU serving path; this process runs on cuda" in message, message
    assert "Traceback" not in result.stderr
    result = engine_cli("predict", run, "--input", data, "--quantize", "int8", cpu=True)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 16


def test_predicting_on_cuda_leaves_no_memory_behind(tiny_task, engine_cli):
    """A process that predicts again and again (a server, a notebook, a Python API) must not hold the models of
    earlier calls on the GPU."""
    path = tiny_task(rows=32)
    assert engine_cli("run", path).exit_code == 0
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        assert engine_cli("predict", path.parent / "runs/tiny", "--input", path.parent / "validation.tsv").exit_code == 0
    assert torch.cuda.max_memory_allocated() > before  # it did predict on the GPU
    left = torch.cuda.memory_allocated() - before
    assert left <= 1 << 20, f"{left / 2**20:.1f} MiB still allocated after three predictions"
