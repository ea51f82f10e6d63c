"""Runs of every built-in task and of the example plugin's task (the ones tests/api trains, made once per session
when a test asks for one), and ``serve``: an in-process server for a model, with an httpx client."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.serve.app import create_app
from engine.serve.settings import ServeSettings

_spec = importlib.util.spec_from_file_location("serve_runs", Path(__file__).parents[1] / "api" / "conftest.py")
assert _spec is not None and _spec.loader is not None
runs = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runs)
classification_run, regression_run, tagging_run, ordinal_run = (
    runs.classification_run, runs.regression_run, runs.tagging_run, runs.ordinal_run)


@asynccontextmanager
async def serving(predictor: Any, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app serving ``predictor`` (an ``engine.load`` result), once it is ready."""
    app = create_app(ServeSettings(predictor.model_dir.parent, **settings), predictor=predictor)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        await ready(client)
        client.app = app  # type: ignore[attr-defined]  # for tests that reach the server's state
        yield client


@pytest.fixture
def serve() -> Any:
    """``async with serve(predictor, **settings) as client``: the app serving ``predictor``, ready, and a client."""
    return serving


async def ready(client: httpx.AsyncClient, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await client.get("/ready")).status_code != 200:
        assert loop.time() < deadline, "the server did not get ready"
        await asyncio.sleep(0.02)
