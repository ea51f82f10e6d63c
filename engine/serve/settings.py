"""What `engine serve` is told: where the model is, the batching knobs and the limits (docs/serving.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A batch's token budget when ``--max-batch-tokens`` is not given, by the kind of device. On a GPU,
#: text-embeddings-inference's: a batch's fixed cost dominates there, so the larger the batch the better. On a CPU
#: a batch's time grows with its tokens: all-MiniLM-L6-v2 on 2 cores costs 8 ms a batch and 0.11 ms a padded token,
#: so 1024 tokens keep the fixed cost near 7% of a full batch, and the memory of a batch in flight (28 KB a token)
#: near 28 MB, where 16384 tokens held 450 MB and grew an overloaded server by 160 MB (bench/serve.py). The budget is
#: the device's at once: the model's streams share it (two streams on a CPU, 512 tokens a batch: the same requests/s
#: at 32 clients as 1024, 181 and 180, and 33 MB less memory held).
DEFAULT_BATCH_TOKENS = {"cpu": 1024, "accelerator": 16384}


@dataclass(frozen=True)
class ServeSettings:
    """The options of `engine serve`, with their defaults."""

    run_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: Threads that run the model, each on a batch of its own, sharing the cores (None: by the device,
    #: ``model_streams``).
    streams: int | None = None
    #: A batch holds at most this many tokens, padding included (its longest input times its inputs); None: by the
    #: device (``DEFAULT_BATCH_TOKENS``, shared by the streams).
    max_batch_tokens: int | None = None
    #: A batch holds inputs of at most this many requests (1: no batching across requests); None: no limit.
    max_batch_requests: int | None = None
    #: How long the first input of a batch may wait for others; 0: a batch forms as soon as the model is free.
    max_wait_ms: float = 0.0
    #: Inputs in one request (above: 413).
    max_client_batch: int = 32
    #: Bytes in one request's body (above: 413).
    max_payload: int = 2_000_000
    #: Requests inside the server at once (above: 429).
    max_concurrent_requests: int = 512
    #: A request is refused (429) when the work queued ahead of it would take longer than this to compute.
    max_queue_ms: float = 1000.0
    quantize: str | None = None
    #: The task served, of a multi-task model (None for a one-task model).
    task: str | None = None
    trust_plugins: bool = False
    plugins: str | None = None
    block_plugins: str = ""

    def batch_tokens(self, device: Any, streams: int = 1) -> int:
        """The token budget of a batch on ``device`` (a torch.device or its name) computed by ``streams`` at once:
        ``--max-batch-tokens``, or the device's budget shared by the streams."""
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        kind = getattr(device, "type", str(device).split(":")[0])
        return max(1, DEFAULT_BATCH_TOKENS["cpu" if kind == "cpu" else "accelerator"] // streams)

    def model_streams(self, device: Any, threads: int) -> int:
        """The model's streams on ``device`` with ``threads`` CPU threads: ``--streams``, or two on a CPU with two
        threads or more, one elsewhere. On a CPU two batches side by side, a thread each, compute more than one at a
        time on both (small matrix products scale poorly with threads): all-MiniLM-L6-v2 on 2 cores, 1.15x to 1.4x
        the inputs/s, 1.3x the requests/s at 32 clients (bench/serve.py); a stream alone uses every thread, so one
        client's latency is the same. On a GPU, batches from two threads queue on one device: nothing gained."""
        if self.streams is not None:
            return self.streams
        kind = getattr(device, "type", str(device).split(":")[0])
        return 2 if kind == "cpu" and threads >= 2 else 1

    def problems(self) -> list[str]:
        """What is wrong with these settings, one message each (empty: nothing)."""
        found = []
        for name in ("workers", "streams", "max_batch_tokens", "max_client_batch", "max_payload",
                     "max_concurrent_requests"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                found.append(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(self, name)}")
        if self.max_batch_requests is not None and self.max_batch_requests < 1:
            found.append(f"--max-batch-requests: expected a positive number, got {self.max_batch_requests}")
        for name in ("max_wait_ms", "max_queue_ms"):
            if getattr(self, name) < 0:
                found.append(f"--{name.replace('_', '-')}: expected 0 or more, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            found.append(f"--port: expected 0 to 65535, got {self.port}")
        return found
