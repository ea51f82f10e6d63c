"""A loaded model serving requests: each request's inputs checked and encoded by the task, its features computed in
the batches the ``Batcher`` forms, and the finished requests' records made as `engine predict` makes them.

The steps are those of ``engine.inference`` on a file (the task's ``encode_batch``, ``collate``, the model,
``outputs``, ``predictions`` and ``format_prediction``), on the model ``engine.load`` placed, with the features kept
in memory: a request's tokens are its own, so batching never changes its numbers beyond float rounding (padding is
masked), and the Arrow a file's rows go through would cost more than the model on a short text. Encoding and
records run in one preparing thread, the model in the batcher's; the event loop only waits.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.data.features import FeatureList, encode_rows, encodes_in_batches, predictions_of
from engine.data.split import rows_of
from engine.errors import DataError, EngineError
from engine.inference.inputs import SOURCE, Columns, split_of_inputs
from engine.serve.batching import Batcher, Job
from engine.serve.memory import Trimmer
from engine.serve.metrics import Metrics
from engine.serve.schema import ServeError, invalid
from engine.serve.settings import ServeSettings


@dataclass(eq=False)
class JobContext:
    """What finishing a job needs: the inputs as given, and where its answer goes."""

    items: list[Any]
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[Any] | None = None
    raw_scores: bool = False
    answer: Any = None  # the Answer (or the error), for a caller waiting on ``done`` rather than on the future
    done: threading.Event | None = None


@dataclass
class Answer:
    """A request's records (one per input, as `engine predict` writes them) and, when asked, each input's raw
    head outputs by name."""

    records: list[dict[str, Any]]
    raw: list[dict[str, float] | None]


class ModelService:
    """``engine.load``'s Predictor behind the batcher."""

    def __init__(self, predictor: Any, settings: ServeSettings, metrics: Metrics) -> None:
        # A multi-task model serves the task named (its head on the shared encoder); `engine serve` checked it.
        name = settings.task if predictor.tasks else None
        if predictor.tasks and name not in predictor.tasks:
            from engine.inference.loading import task_refusal

            raise EngineError(task_refusal(settings.run_dir, name, list(predictor.tasks)))
        loaded = predictor.tasks[name] if name else predictor.loaded
        placed = predictor.placed_tasks[name] if name else predictor.placed
        if not encodes_in_batches(loaded.task):
            raise EngineError(f"engine serve needs a task with encode_batch; {type(loaded.task).__name__} has only "
                              "engine 0.1's encode(split, ...). Update its plugin, or use engine predict")
        self.predictor, self.loaded, self.task, self.tokenizer = predictor, loaded, loaded.task, loaded.tokenizer
        self.model, self.device = placed.model, placed.accelerator.device
        self.max_length: int = loaded.meta["max_length"]
        self.columns = Columns.of(loaded)
        self.word_level = bool(getattr(self.task, "labels_per_word", False))
        self.spec = self.task.head_spec(loaded.model.backbone.config.hidden_size)
        self.names = list(self.spec.labels or [f"LABEL_{i}" for i in range(self.spec.num_outputs)])
        self.form = "record"  # "scores" once the warm-up shows the task's records carry them
        self.metrics = metrics
        self.prep = ThreadPoolExecutor(1, thread_name_prefix="engine-serve-prep")
        self.trimmer = Trimmer()
        self.threads = process_threads()  # the CPU threads the streams share
        streams = settings.model_streams(self.device, self.threads)
        self.batcher = Batcher(self.forward, self.finished, metrics,
                               max_batch_tokens=settings.batch_tokens(self.device, streams),
                               max_batch_requests=settings.max_batch_requests, max_wait_ms=settings.max_wait_ms,
                               streams=streams, after_batch=self.trimmer)
        self.stream = threading.local()  # each stream's thread count

    @property
    def raw_scores_available(self) -> bool:
        return self.spec.level == "sequence"

    # --- start and stop ----------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the model's streams and run a short input, then the largest batch the budget allows (inputs of
        max_length tokens) in every stream at once: the first call of each shape is slow, and the largest batches
        take up front, in the streams' threads (whose allocator keeps it), the memory the server will ever need, so
        that load does not grow it. Learn the records' form, and the speed that estimates how long the queue
        takes."""
        self.batcher.start()

        def item(words: int) -> Any:
            text = " ".join(["warm"] * words)
            return (text, text) if self.columns.pairs else text

        [answer] = self.run_now([item(2)])
        longest = self.prepare([item(self.max_length)], truncate=True, raw_scores=False).lengths
        largest = [item(self.max_length)] * max(1, self.batcher.max_tokens // (max(longest) * len(longest)))
        self.batcher.rate = None  # measured on the largest batches alone
        self.run_now(*[largest] * len(self.batcher.threads))
        self.trimmer.hold()  # the memory of those batches stays: load computes in it
        scores = answer.records[0].get("scores")
        if isinstance(scores, dict) and all(isinstance(v, (int, float)) for v in scores.values()):
            self.form = "scores"

    def run_now(self, *requests: list[Any]) -> list[Answer]:
        """Requests (each a list of items) through the queue and the model's streams together, waited for (the
        warm-up's)."""
        jobs = [self.prepare(items, truncate=True, raw_scores=False) for items in requests]
        for job in jobs:
            job.context.done = threading.Event()
            self.batcher.submit(job)
        answers: list[Answer] = []
        for job in jobs:
            job.context.done.wait()
            if isinstance(job.context.answer, BaseException):
                raise job.context.answer
            answers.append(job.context.answer)
        return answers

    def stop(self) -> None:
        self.batcher.stop()
        self.prep.shutdown(wait=True)

    # --- a request, on the event loop --------------------------------------------------------------------------

    async def submit(self, items: list[Any], *, one: bool, truncate: bool, raw_scores: bool
                     ) -> tuple[Job, asyncio.Future[Any]]:
        """Check and encode ``items`` (off the loop), queue them; the future gets their ``Answer``. ``one``: the
        request gave one input rather than a list (for messages)."""
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(self.prep, lambda: self.prepare(items, one=one, truncate=truncate,
                                                                         raw_scores=raw_scores))
        job.context.loop, job.context.future = loop, loop.create_future()
        self.batcher.submit(job)
        return job, job.context.future

    # --- the preparing thread ----------------------------------------------------------------------------------

    def prepare(self, items: list[Any], *, one: bool = False, truncate: bool, raw_scores: bool) -> Job:
        """The job of a request: its inputs as rows (checked as ``engine.load`` checks them) and their features
        (the task's encoding). A ServeError (422) names the input that does not fit."""
        try:
            rows = [self.columns.row(item, n, labelled=False, word_level=self.word_level)
                    for n, item in enumerate(items, start=1)]
            columns = {key: [row.get(key) for row in rows] for key in dict.fromkeys(k for row in rows for k in row)}
            features = rows_of(encode_rows(columns, list(range(len(rows))), task=self.task, tokenizer=self.tokenizer,
                                           max_length=self.max_length, labelled=False, source=SOURCE))
        except DataError as exc:
            raise invalid(_where(one, exc.line) + exc.message) from None
        if not truncate:
            self.check_lengths(features, len(items), one)
        return Job(features, context=JobContext(items, raw_scores=raw_scores))

    def check_lengths(self, features: list[dict[str, Any]], count: int, one: bool) -> None:
        """No input cut at max_length: one that reaches it and is read as one feature (as `engine predict`
        counts truncated rows; a task that reads long inputs in windows cuts none)."""
        per_row = [0] * count
        for feature in features:
            per_row[feature["row"]] += 1
        for feature in features:
            if feature["length"] >= self.max_length and per_row[feature["row"]] == 1:
                raise invalid(f"{_where(one, feature['row'] + 1)}reaches the model's max_length of "
                              f"{self.max_length} tokens and would be cut; shorten it, or send truncate: true")

    def answers(self, jobs: list[Job]) -> list[Answer]:
        """The records of finished jobs, made together: one split of all their inputs (what the task's
        ``predictions`` reads), their features' outputs, and ``format_prediction`` per input."""
        items = [item for job in jobs for item in job.context.items]
        split = split_of_inputs(self.loaded, items)
        features: list[dict[str, Any]] = []
        outputs: list[Any] = []
        offset = 0
        for job in jobs:
            features += [{**feature, "row": feature["row"] + offset} for feature in job.features]
            outputs += job.outputs
            offset += len(job.context.items)
        predictions = predictions_of(self.task, split, FeatureList(features), outputs)
        records = [self.task.format_prediction(row, p) for row, p in zip(split.rows, predictions)]
        answers, start = [], 0
        for job in jobs:
            count = len(job.context.items)
            raw: list[dict[str, float] | None] = self.raw_scores(job) if job.context.raw_scores else [None] * count
            answers.append(Answer(records[start : start + count], raw))
            start += count
        return answers

    def raw_scores(self, job: Job) -> list[dict[str, float] | None]:
        """Each input's head outputs by name (a sequence-level head's logits)."""
        by_row: list[list[Any]] = [[] for _ in job.context.items]
        for feature, raw in zip(job.features, job.raw):
            by_row[feature["row"]].append(raw)
        for n, values in enumerate(by_row):
            if len(values) != 1:
                raise invalid(f"raw_scores: input {n} is read as {len(values)} sequences, so it has no single set "
                              "of raw scores; ask without raw_scores")
        return [dict(zip(self.names, values[0])) for values in by_row]

    def finish(self, jobs: list[Job]) -> None:
        """Answer the jobs a batch finished: their records, or their error."""
        live = [job for job in jobs if job.error is None and not job.cancelled]
        for job in jobs:
            if job.error is not None:
                self.settle(job, job.error)
        try:
            results: list[Any] = self.answers(live) if live else []
        except Exception:  # answer each alone: only the one that fails fails
            results = []
            for job in live:
                try:
                    results.append(self.answers([job])[0])
                except Exception as exc:
                    results.append(exc)
        for job, result in zip(live, results):
            self.settle(job, result)

    def settle(self, job: Job, result: Any) -> None:
        request: JobContext = job.context
        request.answer = result
        if request.done is not None:
            request.done.set()
        if request.loop is not None and request.future is not None:
            request.loop.call_soon_threadsafe(_settle, request.future, result)

    # --- the model's streams -----------------------------------------------------------------------------------

    def forward(self, features: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        """One batch through the model, by the step ``engine predict`` runs each of its batches with
        (``engine.inference.loop.forward_batch``); and a sequence-level head's logits per feature."""
        import torch

        from engine.inference.loop import forward_batch

        # The first stream uses every thread the others do not: all of them when it computes alone (one client's
        # latency is that of one stream). The others use one thread each: a thread that ever ran a team of torch's
        # threads keeps it, and with more threads than cores OpenMP's threads stop spinning between operations,
        # which made a lone small batch over twice as slow. torch's thread count is each thread's own.
        lead = threading.current_thread() is self.batcher.threads[0]
        threads = max(1, self.threads - (self.batcher.busy - 1)) if lead else 1
        if getattr(self.stream, "threads", None) != threads:
            torch.set_num_threads(threads)
            self.stream.threads = threads
        with torch.inference_mode():
            out, outputs = forward_batch(self.model, self.task, self.tokenizer, features, self.device)
            raw = out.logits.float().cpu().tolist() if self.raw_scores_available else [None] * len(features)
        return outputs, raw

    def finished(self, jobs: list[Job]) -> None:
        self.prep.submit(self.finish, jobs)


_process_threads: list[int] = []


def process_threads() -> int:
    """The process's torch threads, as the first server found them: a stream that sets its own count sets, too,
    the count torch gives threads started afterwards (a second server in the process, its loading thread)."""
    import torch

    if not _process_threads:
        _process_threads.append(torch.get_num_threads())
    return _process_threads[0]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():  # the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result if isinstance(result, (ServeError, EngineError)) else
                             ServeError(500, f"the model failed on this request: {type(result).__name__}: {result}",
                                        "backend"))
    else:
        future.set_result(result)


def _where(one: bool, line: int | None) -> str:
    """Where an input is in the request, for messages: ``line`` is its position from 1."""
    return "inputs: " if one or line is None else f"inputs[{line - 1}]: "
