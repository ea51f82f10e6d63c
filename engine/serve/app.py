"""The FastAPI application of `engine serve`: its routes, its one error shape, who is let in (loading and draining:
503; the queue full: 429), and the model loaded in the background so that ``/health`` answers at once and
``/ready`` says when predictions can be asked for.

    app = create_app(ServeSettings(Path("runs/sentiment")))   # loads the run's model when the app starts
    app = create_app(settings, predictor=engine.load(run_dir))  # or serves one already loaded (tests)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine import console
from engine.config.multitask import of_task
from engine.errors import EngineError
from engine.rundir.reading import read_json
from engine.serve.batching import Job
from engine.serve.metrics import CONTENT_TYPE, Metrics
from engine.serve.model import Answer, ModelService
from engine.serve.schema import (
    ERROR_RESPONSES,
    ErrorBody,
    Info,
    PredictRequest,
    PredictResponse,
    ServeError,
    invalid,
    normalize,
)
from engine.serve.settings import ServeSettings
from engine.version import __version__

DESCRIPTION = """Predictions of a model trained with engine, in text-embeddings-inference's shape.

`POST /predict` takes `{"inputs": ...}`: a text, a `[text, text_pair]` pair, or a list of inputs. For a model whose
predictions carry scores (classification), each input gets every label with its score, best first (`top_k`,
`raw_scores`); for the others (tagging, regression), the record `engine predict` writes. Errors are
`{"error": ..., "error_type": ...}`. See docs/serving.md."""


class ServerState:
    """What the routes share: the settings, the metrics, the model once loaded, and the requests inside."""

    def __init__(self, settings: ServeSettings, predictor: Any = None,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.settings, self.predictor, self.on_failure = settings, predictor, on_failure
        self.metrics = Metrics()
        self.service: ModelService | None = None
        self.failure: BaseException | None = None
        self.draining = False
        self.inside = 0  # /predict requests admitted and not yet answered
        self.idle = asyncio.Event()
        self.idle.set()
        self.starting: asyncio.Task[None] | None = None
        self.metrics.gauge("engine_queue_depth", "Inputs waiting for the model.",
                           lambda: self.service.batcher.depth if self.service else 0)
        self.metrics.gauge("engine_requests_in_progress", "Requests to /predict admitted and not yet answered.",
                           lambda: self.inside)
        self.metrics.gauge("engine_ready", "1 once the model is loaded and warmed, 0 before and while draining.",
                           lambda: float(self.ready))

    @property
    def ready(self) -> bool:
        return self.service is not None and not self.draining

    async def start(self) -> None:
        """Load the model (unless given), warm it up, and open; off the event loop."""
        try:
            self.service = await _in_daemon_thread(self.load)
        except asyncio.CancelledError:  # stopped while loading
            raise
        except BaseException as exc:
            self.failure = exc
            if self.on_failure is not None:
                self.on_failure(exc)
            else:
                raise

    def load(self) -> ModelService:
        from engine.api.predictor import load

        settings = self.settings
        predictor = self.predictor or load(settings.run_dir, settings.quantize, trust_plugins=settings.trust_plugins,
                                           plugins=settings.plugins, block_plugins=settings.block_plugins)
        service = ModelService(predictor, settings, self.metrics)
        service.warm_up()
        return service

    async def stop(self) -> None:
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)

    async def drain(self) -> None:
        """Refuse new requests (503) and wait until every admitted one is answered."""
        self.draining = True
        await self.idle.wait()

    def admit(self) -> ModelService:
        """The service, for a request let in; a ServeError (503, 429) otherwise."""
        if self.draining:
            raise ServeError(503, "the server is shutting down; send the request again (to another replica)",
                             "unavailable", {"Connection": "close"})
        if self.service is None:
            why = f"the model failed to load: {self.failure}" if self.failure else "the model is loading"
            raise ServeError(503, why, "unavailable", {"Retry-After": "1"})
        settings = self.settings
        if self.inside >= settings.max_concurrent_requests:
            raise ServeError(429, f"{self.inside} requests are in progress, the most --max-concurrent-requests "
                             "allows; retry later", "overloaded", {"Retry-After": "1"})
        wait = self.service.batcher.wait_seconds()
        if wait * 1000 > settings.max_queue_ms:
            raise ServeError(429, f"the queue holds about {wait:.1f} s of work, more than --max-queue-ms="
                             f"{settings.max_queue_ms:g}; retry later", "overloaded",
                             {"Retry-After": str(max(1, math.ceil(wait)))})
        self.inside += 1
        self.idle.clear()
        return self.service

    def leave(self) -> None:
        self.inside -= 1
        if not self.inside:
            self.idle.set()

    def info(self) -> dict[str, Any]:
        service = self.service
        if service is None:
            raise ServeError(503, "the model is loading", "unavailable", {"Retry-After": "1"})
        run_dir = service.loaded.directory.parent
        task_file = read_json(run_dir / "task.json")
        model = task_file.get("model") if isinstance(task_file, dict) else None
        metrics = read_json(run_dir / "metrics.json")
        name = service.loaded.name
        if name is not None and isinstance(metrics, dict):  # a multi-task run's: "NAME.METRIC" by split
            metrics = {split: of_task(values, name) for split, values in metrics.items() if isinstance(values, dict)}
        meta = service.loaded.meta
        settings = {key: (str(value) if isinstance(value, Path) else value)
                    for key, value in vars(self.settings).items()}
        settings["max_batch_tokens"] = service.batcher.max_tokens  # the defaults are the device's
        settings["streams"] = len(service.batcher.threads)
        return Info(task=str(meta["task"].get("name")), name=name, labels=service.spec.labels, level=service.spec.level,
                    form=service.form, reads_pairs=service.columns.pairs,
                    model=model.get("name") if isinstance(model, dict) else None, max_length=service.max_length,
                    engine_version=__version__, metrics=metrics if isinstance(metrics, dict) else {},
                    plugins={str(k): str(v) for k, v in meta.get("plugins", {}).items()},
                    settings=settings).model_dump()


def _in_daemon_thread(function: Callable[[], Any]) -> asyncio.Future[Any]:
    """``function()`` in a thread of its own that does not hold the process up at exit (a server stopped while
    loading exits at once)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = function(), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="engine-serve-load", daemon=True).start()
    return future


def create_app(settings: ServeSettings, *, predictor: Any = None,
               on_failure: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The application serving ``settings.run_dir`` (or ``predictor``, an ``engine.load`` result). The model loads
    when the app starts (its lifespan); ``on_failure`` is told if that fails."""
    state = ServerState(settings, predictor, on_failure)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.starting = asyncio.create_task(state.start())
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(title="engine serve", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.engine = state
    _errors(app, state)
    _routes(app, state)
    app.add_middleware(Guard, state=state)
    return app


def _routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health", summary="The process is alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="The model is loaded and warmed (503 before, and while draining)",
             responses={503: {"model": ErrorBody}})
    async def ready() -> dict[str, str]:
        if state.draining:
            raise ServeError(503, "draining: the server is shutting down", "unavailable")
        if not state.ready:
            raise ServeError(503, "the model is loading", "unavailable", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/info", summary="The task, its labels, the model, the engine version and the run's metrics",
             response_model=Info, responses={503: {"model": ErrorBody}})
    async def info() -> dict[str, Any]:
        return state.info()

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/predict", summary="Predict: each input's labels and scores, best first, or its record",
              response_model=PredictResponse, responses=ERROR_RESPONSES)
    async def predict(body: PredictRequest, request: Request) -> Response:
        service = state.admit()
        try:
            items, one = normalize(body.inputs, pairs=service.columns.pairs, word_level=service.word_level,
                                   max_client_batch=state.settings.max_client_batch)
            _check_options(body, service)
            job, future = await service.submit(items, one=one, truncate=body.truncate,
                                               raw_scores=body.raw_scores)
            answer = await _answer(job, future, request, state)
            if answer is None:
                return Response(status_code=499)  # the client went away; nobody reads this
            state.metrics.count(state.metrics.inputs, amount=len(items))
            predictions = _shape(answer, body, service)
            content = predictions[0] if one else predictions
            return Response(json.dumps(content, ensure_ascii=False), media_type="application/json")
        finally:
            state.leave()


def _check_options(body: PredictRequest, service: ModelService) -> None:
    if body.raw_scores and not service.raw_scores_available:
        raise invalid("raw_scores: this model's head scores every token, so an input has no raw scores of its own; "
                      "ask without raw_scores")
    if body.top_k is not None and (service.form != "scores" or body.records):
        raise invalid("top_k: " + ("with records, each input's record comes whole" if body.records else
                                   "this model's predictions carry no scores to rank (see GET /info, form)"))


async def _answer(job: Job, future: asyncio.Future[Any], request: Request, state: ServerState) -> Answer | None:
    """The job's answer; None when the client disconnected first (its inputs are then dropped before compute)."""
    watch = asyncio.ensure_future(request.receive())
    try:
        done, _ = await asyncio.wait({future, watch}, return_when=asyncio.FIRST_COMPLETED)
        if future not in done and watch.result().get("type") == "http.disconnect":
            job.cancelled = True
            future.cancel()
            state.metrics.count(state.metrics.errors, "disconnected")
            return None
        answer: Answer = await future
        return answer
    finally:
        watch.cancel()


def _shape(answer: Answer, body: PredictRequest, service: ModelService) -> list[Any]:
    """Per input: its labels and scores, best first (text-embeddings-inference's shape), or its record."""
    out: list[Any] = []
    for record, raw in zip(answer.records, answer.raw):
        if service.form == "scores" and not body.records:
            scores = raw if body.raw_scores and raw is not None else record["scores"]
            ranked = sorted(scores.items(), key=lambda pair: -pair[1])[: body.top_k]
            out.append([{"label": label, "score": score} for label, score in ranked])
        else:
            out.append({**record, "raw_scores": raw} if body.raw_scores else record)
    return out


# --- errors ------------------------------------------------------------------------------------------------------


def _errors(app: FastAPI, state: ServerState) -> None:
    def reply(request: Request, error: ServeError) -> JSONResponse:
        if request.url.path == "/predict":
            state.metrics.count(state.metrics.errors, error.error_type)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return reply(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return reply(request, invalid(_validation_message(exc.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return reply(request, ServeError(exc.status_code, str(exc.detail), kinds.get(exc.status_code, "http"),
                                         dict(exc.headers or {})))

    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        return reply(request, invalid(str(exc)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        console.warn(f"engine serve: {request.url.path} failed: {type(exc).__name__}: {exc}")
        return reply(request, ServeError(500, f"{type(exc).__name__}: {exc}", "backend"))


def _validation_message(errors: Any) -> str:
    """Pydantic's errors in one line: where (``inputs[2]``) and what, the first few."""
    parts = []
    for error in list(errors)[:3]:
        if error.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON: {error.get('ctx', {}).get('error', 'cannot decode it')} (at "
                         f"character {error['loc'][-1]})")
            continue
        where = ""
        for key in [k for k in error.get("loc", ()) if k != "body"]:
            if isinstance(key, int):
                where += f"[{key}]"
            elif not (key.startswith(("str", "list[", "dict[")) or key in ("function-after",)):
                where += f".{key}" if where else key
        message = error.get("msg", "invalid")
        parts.append(f"{where}: {message}" if where else message)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


class Guard:
    """Around every request: a body over ``--max-payload`` is refused (413) before it is read whole, and the
    answers of ``/predict`` are counted by status code and timed."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.max_payload
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_error(send, _too_large(limit))
            self.state.metrics.count(self.state.metrics.errors, "payload_too_large")
            self.state.metrics.count(self.state.metrics.requests, "413")
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI passes an HTTPException raised while it reads the body on
                    raise HTTPException(413, _too_large(limit).message)
            return message

        started, status = time.perf_counter(), 500
        predicting = scope.get("path") == "/predict"

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited, counted if predicting else send)
        finally:
            if predicting and status != 499:
                self.state.metrics.count(self.state.metrics.requests, str(status))
                if status == 200:
                    self.state.metrics.observe(self.state.metrics.latency, time.perf_counter() - started)


def _too_large(limit: int) -> ServeError:
    return ServeError(413, f"the body is over --max-payload={limit} bytes; send fewer inputs per request",
                      "payload_too_large")


async def _send_error(send: Send, error: ServeError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
