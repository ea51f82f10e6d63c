"""`engine serve` itself: it refuses what it cannot serve before starting, and the real server, in a process of
its own, drains on SIGTERM mid-load: the requests it had admitted are answered, new ones get 503, then it exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest


def test_a_folder_without_a_model_or_a_bad_setting_fails_before_serving(run_engine, tmp_path, classification_run):
    result = run_engine("serve", tmp_path)
    assert result.exit_code != 0
    assert "no trained model here" in result.stderr
    result = run_engine("serve", classification_run.run_dir, "--max-batch-tokens", "0", "--max-wait-ms", "-1",
                        "--streams", "0")
    assert result.exit_code == 1
    assert "--max-batch-tokens: expected a positive number, got 0" in result.stderr
    assert "--streams: expected a positive number, got 0" in result.stderr
    assert "--max-wait-ms: expected 0 or more, got -1.0" in result.stderr


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the server, its workers too (its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def start(run_dir: Path, log: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    """`engine serve RUN_DIR --port 0` in a process of its own; the process and its address, once it listens."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": ""}
    process = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(run_dir), "--port", "0", *flags],
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (found := re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text())):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process, found.group(1)


@pytest.mark.slow
def test_sigterm_mid_load_answers_what_was_admitted_refuses_the_rest_and_exits_0(classification_run, tmp_path):
    log = tmp_path / "serve.log"
    # Batches wait 2 s for more inputs, so the requests are still inside when the signal comes.
    process, url = start(classification_run.run_dir, log, "--max-wait-ms", "2000")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 120
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert client.post("/predict", json={"inputs": "a good film"}).status_code == 200

        def post(text: str) -> httpx.Response:
            with httpx.Client(base_url=url, timeout=60) as one:
                return one.post("/predict", json={"inputs": [text, "the bad food"]})

        with ThreadPoolExecutor(8) as pool:
            admitted = [pool.submit(post, f"a good film {n}") for n in range(8)]
            while "engine_requests_in_progress 8" not in httpx.get(url + "/metrics").text:
                time.sleep(0.02)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            refused = post("too late")
            answered = [future.result() for future in admitted]
        assert [r.status_code for r in answered] == [200] * 8
        assert all(len(r.json()) == 2 for r in answered)
        assert refused.status_code == 503
        assert refused.json()["error_type"] == "unavailable"
        assert process.wait(60) == 0, log.read_text()
        assert "draining" in log.read_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health")
    finally:
        stop(process)


@pytest.mark.slow
def test_several_workers_share_the_port_and_stop_together_on_sigterm(classification_run, tmp_path):
    log = tmp_path / "serve.log"
    process, url = start(classification_run.run_dir, log, "--workers", "2")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 180
            answers = []
            while len(answers) < 6:
                assert time.monotonic() < deadline, log.read_text()
                response = client.post("/predict", json={"inputs": "a good film"})
                if response.status_code == 200:
                    answers.append(response.json())
                else:
                    assert response.status_code == 503  # a worker still loading
                    time.sleep(0.2)
        assert all(answer == answers[0] for answer in answers)
        process.send_signal(signal.SIGTERM)
        assert process.wait(180) == 0, log.read_text()
    finally:
        stop(process)


@pytest.mark.slow
def test_sigterm_while_the_workers_still_start_stops_them_and_exits_0(classification_run, tmp_path):
    log = tmp_path / "serve.log"
    process, _ = start(classification_run.run_dir, log, "--workers", "2")
    try:
        process.send_signal(signal.SIGTERM)  # the workers are still importing, or loading the model
        assert process.wait(60) == 0, log.read_text()
    finally:
        stop(process)
