"""Every bad request gets the status code users expect and a JSON error ``{"error", "error_type"}``, and the
server keeps serving after each: empty input 400; a body over --max-payload or a batch over --max-client-batch 413;
wrong types, unknown fields, an input the model cannot read, or one over max_length with truncate: false, 422;
the queue full 429 with Retry-After; loading and draining 503; a request the model fails on 500, alone."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

import engine

LONG = " ".join(["the good film was very long and"] * 40)


async def expect(client: Any, status: int, error_type: str, message: str, **request: Any) -> Any:
    """Send ``request``; the answer is ``status`` with a JSON error of ``error_type`` whose message holds
    ``message``; and the next good request is answered."""
    response = await client.post("/predict", **request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    assert message in body["error"]
    good = await client.post("/predict", json={"inputs": "a good film"})
    assert good.status_code == 200, good.text
    return response


CLASSIFICATION_ERRORS = [
    (400, "empty", "inputs: an empty text", {"inputs": ""}),
    (400, "empty", "inputs: an empty list", {"inputs": []}),
    (400, "empty", "inputs[1]: an empty text", {"inputs": ["good", "  "]}),
    (400, "empty", "inputs[0]: an empty list", {"inputs": [[]]}),
    (413, "payload_too_large", "more than --max-client-batch=32", {"inputs": ["good"] * 33}),
    (422, "validation", "inputs: Input should be a valid string", {"inputs": 5}),
    (422, "validation", "inputs: Field required", {"text": "a good film"}),
    (422, "validation", "unknown: Extra inputs are not permitted", {"inputs": "good", "unknown": 1}),
    (422, "validation", "top_k: Input should be a valid integer", {"inputs": "good", "top_k": "2"}),
    (422, "validation", "top_k: Input should be greater than or equal to 1", {"inputs": "good", "top_k": 0}),
    (422, "validation", "raw_scores: Input should be a valid boolean", {"inputs": "good", "raw_scores": "yes"}),
    (422, "validation", "inputs[0]: this model reads one text at a time, not pairs",
     {"inputs": [["a pair", "of texts"]]}),
    (422, "validation", "inputs[0]: a list of 3 texts", {"inputs": [["three", "texts", "here"]]}),
    (422, "validation", "inputs[0]: missing text column 'sentence'", {"inputs": [{"text_a": "x"}]}),
    (422, "validation", "reaches the model's max_length of", {"inputs": LONG, "truncate": False}),
    (422, "validation", "inputs[1]: reaches the model's max_length", {"inputs": ["good", LONG], "truncate": False}),
    (422, "validation", "top_k: with records", {"inputs": "good", "top_k": 1, "records": True}),
]


@pytest.mark.parametrize(("status", "error_type", "message", "body"), CLASSIFICATION_ERRORS,
                         ids=[f"{case[0]}-{case[2][:40]}" for case in CLASSIFICATION_ERRORS])
def test_a_bad_request_gets_its_status_and_a_json_error_and_the_server_goes_on(
        classification_run, serve, status, error_type, message, body):
    predictor = engine.load(classification_run.run_dir)

    async def scenario() -> None:
        async with serve(predictor) as client:
            await expect(client, status, error_type, message, json=body)

    asyncio.run(scenario())


def test_bodies_that_are_not_json_or_too_large(classification_run, serve):
    predictor = engine.load(classification_run.run_dir)

    async def chunks():
        yield b'{"inputs": "'
        for _ in range(30):
            yield b"good " * 20
        yield b'"}'

    async def scenario() -> None:
        async with serve(predictor, max_payload=2000) as client:
            json_type = {"content-type": "application/json"}
            await expect(client, 422, "validation", "the body is not valid JSON", content=b"{inputs", headers=json_type)
            await expect(client, 422, "validation", "Field required", content=b"", headers=json_type)
            await expect(client, 413, "payload_too_large", "over --max-payload=2000 bytes",
                         json={"inputs": "good " * 500})
            await expect(client, 413, "payload_too_large", "over --max-payload=2000 bytes", content=chunks(),
                         headers=json_type)
            for path, method, status, kind in (("/nothing", "GET", 404, "not_found"),
                                               ("/predict", "GET", 405, "method_not_allowed")):
                response = await client.request(method, path)
                assert (response.status_code, response.json()["error_type"]) == (status, kind)

    asyncio.run(scenario())


def test_options_a_model_cannot_honour_are_422(tagging_run, regression_run, serve):
    async def scenario() -> None:
        async with serve(engine.load(tagging_run.run_dir)) as client:
            await expect(client, 422, "validation", "raw_scores: this model's head scores every token",
                         json={"inputs": "john lives here", "raw_scores": True})
            await expect(client, 422, "validation", "top_k: this model's predictions carry no scores",
                         json={"inputs": "john lives here", "top_k": 2})
        async with serve(engine.load(regression_run.run_dir)) as client:
            response = await client.post("/predict", json={"inputs": ["one", "two", "three"]})
            assert response.status_code == 422
            assert "inputs[0]: this model reads pairs of texts" in response.json()["error"]
            assert (await client.post("/predict", json={"inputs": ["one", "two"]})).status_code == 200

    asyncio.run(scenario())


class Gate:
    """The model's thread held inside ``forward`` until opened; what each batch held is kept. (Its servers run one
    stream: with two, the second would take what the first is held on.)"""

    def __init__(self, batcher: Any) -> None:
        self.forward, self.batcher = batcher.forward, batcher
        self.open, self.entered = threading.Event(), threading.Event()
        self.batches: list[list[dict[str, Any]]] = []
        batcher.forward = self

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        self.batches.append(features)
        self.entered.set()
        self.open.wait(30)
        return self.forward(features)

    async def held(self) -> None:
        await asyncio.to_thread(self.entered.wait, 30)


def test_a_full_queue_is_429_with_retry_after(classification_run, serve):
    predictor = engine.load(classification_run.run_dir)

    async def scenario() -> None:
        async with serve(predictor, max_concurrent_requests=1, streams=1) as client:
            gate = Gate(client.app.state.engine.service.batcher)
            first = asyncio.create_task(client.post("/predict", json={"inputs": "a good film"}))
            await gate.held()
            refused = await client.post("/predict", json={"inputs": "a good film"})
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json() == {"error": "1 requests are in progress, the most --max-concurrent-requests "
                                               "allows; retry later", "error_type": "overloaded"}
            gate.open.set()
            assert (await first).status_code == 200
            assert (await client.post("/predict", json={"inputs": "a good film"})).status_code == 200

        async with serve(predictor, max_queue_ms=100, streams=1) as client:
            batcher = client.app.state.engine.service.batcher
            gate = Gate(batcher)
            first = asyncio.create_task(client.post("/predict", json={"inputs": ["a good film"] * 8}))
            await gate.held()
            batcher.rate = 10.0  # tokens a second: the batch in progress is seconds of work
            refused = await client.post("/predict", json={"inputs": "a good film"})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 2
            assert "more than --max-queue-ms=100" in refused.json()["error"]
            gate.open.set()
            assert (await first).status_code == 200
            batcher.rate = 1e9
            assert (await client.post("/predict", json={"inputs": "a good film"})).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'engine_requests_total{code="429"} 1' in metrics
            assert 'engine_errors_total{error_type="overloaded"} 1' in metrics

    asyncio.run(scenario())


def test_one_request_the_model_fails_on_fails_alone_among_those_batched_with_it(classification_run, serve):
    predictor = engine.load(classification_run.run_dir)
    poison = predictor.loaded.tokenizer.convert_tokens_to_ids("awesome")

    async def scenario() -> None:
        async with serve(predictor, max_wait_ms=200) as client:
            batcher = client.app.state.engine.service.batcher
            forward, sizes = batcher.forward, []

            def fragile(features: list[dict[str, Any]]) -> Any:
                sizes.append(len(features))
                if any(poison in feature["input_ids"] for feature in features):
                    raise RuntimeError("the model cannot read this")
                return forward(features)

            batcher.forward = fragile
            texts = ["a good film", "awesome", "the bad food", "great", "an awesome one"]
            answers = await asyncio.gather(*(client.post("/predict", json={"inputs": t}) for t in texts))
            assert [a.status_code for a in answers] == [200, 500, 200, 200, 500]
            assert answers[1].json() == {"error": "the model failed on this request: RuntimeError: the model cannot "
                                                  "read this", "error_type": "backend"}
            assert sizes[0] == 5  # they were batched together, then run request by request
            assert (await client.post("/predict", json={"inputs": "a good film"})).status_code == 200

    asyncio.run(scenario())


def test_503_while_loading_and_while_draining_and_health_all_along(classification_run, serve, monkeypatch):
    from engine.serve.app import create_app
    from engine.serve.model import ModelService
    from engine.serve.settings import ServeSettings

    predictor = engine.load(classification_run.run_dir)
    loaded = threading.Event()
    warm_up = ModelService.warm_up

    def slow_warm_up(self: ModelService) -> None:
        loaded.wait(30)
        warm_up(self)

    monkeypatch.setattr(ModelService, "warm_up", slow_warm_up)

    async def scenario() -> None:
        import httpx

        app = create_app(ServeSettings(classification_run.run_dir), predictor=predictor)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
            assert (await client.get("/health")).json() == {"status": "ok"}
            for path in ("/ready", "/info"):
                response = await client.get(path)
                assert response.status_code == 503 and response.json()["error_type"] == "unavailable"
            response = await client.post("/predict", json={"inputs": "a good film"})
            assert (response.status_code, response.json()["error"]) == (503, "the model is loading")
            assert response.headers["retry-after"] == "1"
            loaded.set()
            while (await client.get("/ready")).status_code != 200:
                await asyncio.sleep(0.02)
            assert (await client.post("/predict", json={"inputs": "a good film"})).status_code == 200
            await app.state.engine.drain()
            response = await client.post("/predict", json={"inputs": "a good film"})
            assert response.status_code == 503 and response.headers["connection"] == "close"
            assert "shutting down" in response.json()["error"]
            assert (await client.get("/ready")).status_code == 503
            assert (await client.get("/health")).status_code == 200

    asyncio.run(scenario())


def test_a_request_whose_client_went_away_is_dropped_before_compute(classification_run, serve):
    predictor = engine.load(classification_run.run_dir)
    ids = predictor.loaded.tokenizer.convert_tokens_to_ids

    async def scenario() -> None:
        async with serve(predictor, streams=1) as client:
            app = client.app
            batcher = app.state.engine.service.batcher
            gate = Gate(batcher)
            first = asyncio.create_task(client.post("/predict", json={"inputs": "a good film"}))
            await gate.held()
            gone = asyncio.Event()
            leaving = asyncio.create_task(asgi_post(app, {"inputs": "the bad food"}, gone))
            while not batcher.depth:
                await asyncio.sleep(0.01)
            gone.set()
            await leaving
            gate.open.set()
            assert (await first).status_code == 200
            assert (await client.post("/predict", json={"inputs": "great"})).status_code == 200
            computed = [feature["input_ids"] for batch in gate.batches for feature in batch]
            assert not any(ids("food") in input_ids for input_ids in computed)
            metrics = (await client.get("/metrics")).text
            assert "engine_dropped_inputs_total 1" in metrics
            assert 'engine_errors_total{error_type="disconnected"} 1' in metrics

    asyncio.run(scenario())


async def asgi_post(app: Any, body: dict[str, Any], gone: asyncio.Event) -> list[dict[str, Any]]:
    """POST /predict straight to the ASGI app, from a client that disconnects once ``gone`` is set."""
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"host", b"engine")],
             "client": ("127.0.0.1", 1), "server": ("engine", 80)}
    await app(scope, receive, send)
    return sent
