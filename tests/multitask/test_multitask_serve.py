"""`engine serve` on a multi-task model: one task, named; without a name, a message that lists them."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

import engine
from engine.errors import EngineError
from engine.serve.app import create_app
from engine.serve.metrics import Metrics
from engine.serve.model import ModelService
from engine.serve.settings import ServeSettings


async def answers(predictor, run_dir, task, payload, route="/predict"):
    app = create_app(ServeSettings(run_dir, task=task), predictor=predictor)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        while (await client.get("/ready")).status_code != 200:
            await asyncio.sleep(0.02)
        response = await client.post(route, json=payload) if payload is not None else await client.get(route)
        assert response.status_code == 200, response.text
        return response.json()


def test_a_named_task_is_served_as_the_predictor_predicts_it(three_task_run):
    predictor = engine.load(three_task_run.run_dir)
    texts = ["a good film", "a dull and long film"]
    served = asyncio.run(answers(predictor, three_task_run.run_dir, "sentiment", {"inputs": texts}))
    expected = predictor.predict(texts, task="sentiment")
    for got, want in zip(served, expected):
        best = max(got, key=lambda s: s["score"])
        assert best["label"] == want["label"]
        assert best["score"] == pytest.approx(want["scores"][want["label"]], abs=1e-5)


def test_info_names_the_served_task_and_gives_its_own_metrics(three_task_run):
    predictor = engine.load(three_task_run.run_dir)
    info = asyncio.run(answers(predictor, three_task_run.run_dir, "entities", None, route="/info"))
    assert info["task"] == "tagging" and info["name"] == "entities"
    assert "entity_f1" in info["metrics"]["validation"] and "accuracy" not in info["metrics"]["validation"]


def test_a_multi_task_model_without_a_task_is_refused_with_its_tasks(three_task_run):
    predictor = engine.load(three_task_run.run_dir)
    with pytest.raises(EngineError, match="sentiment"):
        ModelService(predictor, ServeSettings(three_task_run.run_dir), Metrics())
    done = subprocess.run([sys.executable, "-m", "engine", "serve", str(three_task_run.run_dir), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "entities" in done.stderr and "--task" in done.stderr
