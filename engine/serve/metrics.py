"""What ``GET /metrics`` exposes, in Prometheus' text format (0.0.4): counters, gauges and histograms kept here,
updated from the event loop and the model's streams under one lock (a few microseconds a request)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Counter:
    name: str
    help: str
    label: str | None = None  # the one label a counter of this module may have
    values: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.label is None:
            return [f"{self.name} {_number(self.values.get('', 0.0))}"]
        return [f'{self.name}{{{self.label}="{key}"}} {_number(value)}' for key, value in sorted(self.values.items())]


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1

    def lines(self) -> list[str]:
        out = [f'{self.name}_bucket{{le="{_number(bound)}"}} {n}' for bound, n in zip(self.buckets, self.counts)]
        out += [f'{self.name}_bucket{{le="+Inf"}} {self.count}', f"{self.name}_sum {_number(self.total)}",
                f"{self.name}_count {self.count}"]
        return out


class Metrics:
    """The server's metrics, by purpose; ``render()`` writes them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = Counter("engine_requests_total", "Requests to /predict answered, by status code.", "code")
        self.inputs = Counter("engine_inputs_total", "Inputs predicted.")
        self.errors = Counter("engine_errors_total", "Requests to /predict that failed, by kind.", "error_type")
        self.dropped = Counter("engine_dropped_inputs_total",
                               "Inputs dropped before compute because their client had gone.")
        self.tokens = Counter("engine_batch_tokens_total", "Tokens computed in batches: real ones, and padded "
                              "(the batch's longest input times its inputs); real / padded is the padding "
                              "efficiency.", "kind")
        self.latency = Histogram("engine_request_duration_seconds", "Time from a /predict request's arrival to its "
                                 "answer.", LATENCY_BUCKETS)
        self.queue_time = Histogram("engine_queue_duration_seconds", "Time from a request's inputs entering the "
                                    "queue to the first batch that computes one of them.", LATENCY_BUCKETS)
        self.inference_time = Histogram("engine_inference_duration_seconds", "Time the model takes for a batch.",
                                        LATENCY_BUCKETS)
        self.batch_inputs = Histogram("engine_batch_inputs", "Inputs (features) in a batch.", SIZE_BUCKETS)
        self.batch_requests = Histogram("engine_batch_requests", "Requests with inputs in a batch.", SIZE_BUCKETS)
        self.gauges: list[tuple[str, str, Callable[[], float]]] = []

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        """A value read when scraped."""
        self.gauges.append((name, help, read))

    def count(self, counter: Counter, key: str = "", amount: float = 1.0) -> None:
        with self.lock:
            counter.values[key] = counter.values.get(key, 0.0) + amount

    def observe(self, histogram: Histogram, value: float) -> None:
        with self.lock:
            histogram.observe(value)

    def render(self) -> str:
        lines: list[str] = []
        with self.lock:
            for metric in self._all():
                kind = "counter" if isinstance(metric, Counter) else "histogram"
                lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {kind}", *metric.lines()]
        for name, help, read in self.gauges:
            lines += [f"# HELP {name} {help}", f"# TYPE {name} gauge", f"{name} {_number(read())}"]
        return "\n".join(lines) + "\n"

    def _all(self) -> Iterable[Counter | Histogram]:
        return (self.requests, self.inputs, self.errors, self.dropped, self.tokens, self.latency, self.queue_time,
                self.inference_time, self.batch_inputs, self.batch_requests)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
