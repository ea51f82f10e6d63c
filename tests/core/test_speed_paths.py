"""The fast paths keep their promises: int8 prediction stays within its stated tolerance of the trained model,
mixed precision follows the hardware, and the training loop reads no loss it does not need."""

import json

import pytest
import torch

from engine.callbacks import StepLogs
from engine.errors import ConfigError
from engine.testing import labelled_rows, tsv
from engine.training import precision


@pytest.fixture
def trained(write_task, tiny_model_dir, run_engine):
    rows = labelled_rows(["bad", "good", "great"], 96, 1)
    path = write_task({"task": "classification", "model": {"name": str(tiny_model_dir)},
                       "data": {"train": "train.tsv", "validation": "dev.tsv"},
                       "training": {"epochs": 4, "batch_size": 8, "seed": 3}, "optimizer": {"lr": 2e-3},
                       "output_dir": "run"},
                      {"train.tsv": tsv(rows), "dev.tsv": tsv(labelled_rows(["bad", "good", "great"], 60, 2))})
    assert run_engine("run", path).exit_code == 0
    return path.parent


def predictions(run_engine, folder, *flags):
    out = folder / f"predictions{len(flags)}.jsonl"
    result = run_engine("predict", folder / "run", "-i", folder / "dev.tsv", "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_int8_predictions_agree_with_the_trained_model_within_the_stated_tolerance(trained, run_engine):
    exact = predictions(run_engine, trained)
    fast = predictions(run_engine, trained, "--quantize", "int8")
    assert len(fast) == len(exact) == 60
    # docs/benchmarks.md: the same label for at least 99% of rows, every score within 0.05
    assert sum(a["label"] == b["label"] for a, b in zip(exact, fast)) / len(exact) >= 0.99
    assert max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(exact, fast) for k in a["scores"]) < 0.05
    # and they are not the same computation: int8 moved the scores
    assert any(a["scores"] != b["scores"] for a, b in zip(exact, fast))


def test_int8_evaluation_scores_close_to_the_run(trained, run_engine, tmp_path):
    result = run_engine("evaluate", trained / "run", "--data", trained / "dev.tsv", "--quantize", "int8",
                        "--output", tmp_path / "m.json")
    assert result.exit_code == 0, result.stderr
    fast = json.loads((tmp_path / "m.json").read_text())
    exact = json.loads((trained / "run" / "metrics.json").read_text())["validation"]
    assert fast["accuracy"] == pytest.approx(exact["accuracy"], abs=0.02)


def test_quantize_int8_replaces_the_encoders_linear_layers_only(trained):
    from engine.inference.loading import load_model
    from engine.model.quantize import quantize_int8
    from engine.plugins.manager import load_plugins

    model = load_model(trained / "run", load_plugins([], None)).model
    quantize_int8(model)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert any(isinstance(m, dynamic) for m in model.backbone.modules())
    assert not any(type(m) is torch.nn.Linear for m in model.backbone.modules())
    assert any(type(m) is torch.nn.Linear for m in model.head.modules())  # the head stays as trained


def test_auto_precision_is_fp32_on_a_cpu_and_bf16_on_a_gpu_that_has_it(monkeypatch):
    assert precision.resolve_precision("auto", torch.device("cpu")) == "no"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.resolve_precision("auto", torch.device("cuda")) == "no"
    assert precision.resolve_precision("fp16", torch.device("cuda")) == "fp16"


def test_bf16_on_a_cpu_without_native_bf16_is_refused_with_numbers(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError) as error:
        precision.resolve_precision("bf16", torch.device("cpu"))
    message = str(error.value)
    assert "training.mixed_precision" in message and "no native bf16" in message
    assert "samples/s" in message and "bench/results/precision_cpu.md" in message
    with pytest.raises(ConfigError, match="fp16"):
        precision.resolve_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_a_run_asking_bf16_on_such_a_cpu_stops_before_loading_anything(tiny_task, run_engine, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    path = tiny_task(training={"epochs": 1, "batch_size": 8, "mixed_precision": "bf16"})
    result = run_engine("run", path)
    assert result.exit_code == 2
    assert "training.mixed_precision: 'bf16' on this CPU would train about" in result.stderr
    assert not (path.parent / "runs" / "tiny").exists()


class CountingLoss:
    def __init__(self, value):
        self.value, self.reads = value, 0

    def __float__(self):
        self.reads += 1
        return self.value


def test_step_logs_read_the_loss_only_when_asked_and_once():
    loss = CountingLoss(0.25)
    logs = StepLogs(loss, 1e-3)
    assert logs["lr"] == 1e-3 and list(logs) == ["loss", "lr"] and len(logs) == 2
    assert loss.reads == 0  # nobody asked: no host synchronization
    assert dict(logs) == {"loss": 0.25, "lr": 1e-3}
    assert logs["loss"] == 0.25 and loss.reads == 1
    assert json.dumps({**logs}) == '{"loss": 0.25, "lr": 0.001}'
