"""`engine serve` under load: requests/s, p50/p99 latency and padding efficiency with dynamic batching and with it
off (`--max-batch-requests 1`), at 1, 8, 32 and 128 concurrent clients (closed loop, asyncio HTTP/1.1 clients), on
a length mix (70% short, 25% medium, 5% long); `engine predict`'s offline texts/s on the same texts as the
ceiling; then an open-loop overload at twice the measured capacity: every answer 200 or 429, memory growth, and how
soon p50 recovers once the load stops. Writes bench/results/serve.md.

    engine run examples/sentiment/task.json --set output_dir=/tmp/serve_run --set training.epochs=1
    python bench/serve.py /tmp/serve_run [--seconds 15] [--clients 1,8,32,128] [--overload-seconds 60]

The servers run side by side (batching on, off, and on with the model in one stream; idle in turn) and are
measured alternately at each concurrency, so that a neighbour's load on a shared machine weighs on both alike. The load generator shares the
machine with the server: its CPU is part of what is measured, so it is kept lean (a connection a simulated user,
each request's bytes made once: 2% of a core at 32 clients, where httpx took 15%), as wrk or oha would be on a
machine of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
MIX = (("short", 0.70, 1), ("medium", 0.25, 5), ("long", 0.05, 14))  # name, share, sentences per text
OPEN_LOOP_CLIENTS = 256  # of 4 connections each: requests go out on time whatever is outstanding
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of the length mix, made of examples/sentiment's sentences."""
    sentences = []
    for name in ("train.tsv", "validation.tsv"):
        with (ROOT / "examples" / "sentiment" / name).open(encoding="utf-8") as f:
            sentences += [row["sentence"] for row in csv.DictReader(f, delimiter="\t")]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r, share, count = rng.random(), 0.0, MIX[-1][2]
        for _, weight, sentences_per_text in MIX:
            share += weight
            if r < share:
                count = sentences_per_text
                break
        out.append(" ".join(rng.sample(sentences, count)))
    return out


def offline(run_dir: Path, pool: list[str], work: Path) -> dict[str, float]:
    """`engine predict` on the pool: the whole command's time, and the texts/s of its prediction (the model
    loaded, as ``engine.load(...).predict(file)`` does it: the path of `engine predict`), best of two."""
    file = work / "pool.tsv"
    file.write_text("sentence\n" + "".join(t.replace("\t", " ") + "\n" for t in pool), encoding="utf-8")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "predict", str(run_dir), "--input", str(file), "--output",
                    str(work / "offline.jsonl")], env=ENV, check=True, capture_output=True)
    command = time.perf_counter() - started
    probe = ("import sys, time, pathlib, engine\np = engine.load(sys.argv[1])\nbest = 1e9\n"
             "for _ in range(2):\n    t = time.perf_counter(); p.predict(pathlib.Path(sys.argv[2]))\n"
             "    best = min(best, time.perf_counter() - t)\nprint(best)")
    done = subprocess.run([sys.executable, "-c", probe, str(run_dir), str(file)], env=ENV, check=True,
                          capture_output=True, text=True)
    seconds = float(done.stdout.strip().splitlines()[-1])
    return {"texts": len(pool), "command_s": command, "predict_s": seconds, "texts_per_s": len(pool) / seconds}


@dataclass
class Server:
    name: str
    flags: list[str]
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    log: Path | None = None

    def start(self, run_dir: Path, work: Path) -> None:
        self.log = work / f"{self.name}.log"
        self.process = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(run_dir), "--port", "0",
                                         *self.flags], env=ENV, stdout=subprocess.DEVNULL,
                                        stderr=self.log.open("wb"))

    def wait_ready(self) -> None:
        assert self.process is not None and self.log is not None
        deadline = time.monotonic() + 300
        while not (found := re.search(r"on (http://127\.0\.0\.1:\d+)", self.log.read_text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.2)
        self.url = found.group(1)
        while True:
            try:
                if httpx.get(self.url + "/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not get ready:\n{self.log.read_text()}")
            time.sleep(0.2)

    def metrics(self) -> dict[str, float]:
        text = httpx.get(self.url + "/metrics").text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                values[key] = float(value)
        return values

    def rss_mb(self) -> float:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # seconds, of the 200s
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds the load generator used while measuring

    def add(self, status: str, latency: float | None = None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if latency is not None:
            self.latencies.append(latency)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Connection:
    """One HTTP/1.1 keep-alive connection to the server: a request written whole, its answer read by its
    Content-Length. What the load generator costs a request, it takes from the server on this shared machine: this
    costs about a seventh of httpx's (at 32 clients and 180 requests/s, 2% of a core against 15%)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """POST /predict with ``body`` (JSON); the status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"POST /predict HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (self.host.encode(), self.port, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, length, close = int(head[9:12]), None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise ValueError(f"an answer without Content-Length: {head!r}")
        await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Client:
    """A simulated user: at most ``connections`` requests at once, each on a connection of its own (kept open)."""

    def __init__(self, url: str, connections: int = 1) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.idle: list[Connection] = []
        self.free = asyncio.Semaphore(connections)

    async def post(self, body: bytes, load: Load) -> None:
        async with self.free:
            connection = self.idle.pop() if self.idle else Connection(self.host, self.port)
            started = time.perf_counter()
            try:
                status = await asyncio.wait_for(connection.post(body), 60)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                    ValueError) as exc:
                connection.close()
                load.add(type(exc).__name__)
                return
            finally:
                if connection.writer is not None:
                    self.idle.append(connection)
            latency = time.perf_counter() - started
            load.add(str(status), latency if status == 200 else None)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


def bodies(pool: list[str]) -> list[bytes]:
    """Each text's request body, made once."""
    return [json.dumps({"inputs": text}).encode() for text in pool]


async def closed_loop(url: str, pool: list[str], clients: int, seconds: float, warm: float = 2.0) -> Load:
    """``clients`` clients, each sending its next request when the last is answered; measured after ``warm``."""
    load, measuring, stop = Load(), asyncio.Event(), asyncio.Event()
    requests = bodies(pool)

    async def one(n: int) -> None:
        rng, client = random.Random(n), Client(url)
        try:
            while not stop.is_set():
                await client.post(rng.choice(requests), load if measuring.is_set() else Load())
        finally:
            client.close()

    tasks = [asyncio.create_task(one(n)) for n in range(clients)]
    await asyncio.sleep(warm)
    measuring.set()
    cpu = psutil.Process().cpu_times()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    stop.set()
    load.seconds = time.perf_counter() - started
    load.client_cpu = sum(psutil.Process().cpu_times()[:2]) - sum(cpu[:2])
    await asyncio.gather(*tasks)
    return load


def delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def measure(server: Server, pool: list[str], clients: int, seconds: float, keep: bool = False) -> dict[str, Any]:
    """A closed-loop point; with ``keep``, its latencies (seconds) too."""
    before = server.metrics()
    load = asyncio.run(closed_loop(server.url, pool, clients, seconds, warm=0.5 if keep else 2.0))
    after = server.metrics()
    real = delta(after, before, 'engine_batch_tokens_total{kind="real"}')
    padded = delta(after, before, 'engine_batch_tokens_total{kind="padded"}')
    batches = delta(after, before, "engine_batch_inputs_count")
    ok = load.statuses.get("200", 0)
    return {"clients": clients, "rps": ok / load.seconds, "p50": load.percentile(0.5), "p99": load.percentile(0.99),
            "padding": real / padded if padded else float("nan"),
            "batch": delta(after, before, "engine_batch_inputs_sum") / batches if batches else float("nan"),
            "client_cpu": load.client_cpu / load.seconds,
            "errors": sum(n for status, n in load.statuses.items() if status != "200"),
            **({"latencies": load.latencies} if keep else {})}


def interleaved(servers: list[Server], pool: list[str], clients: int, seconds: float,
                rounds: int = 6) -> dict[str, dict[str, float]]:
    """``measure`` of each server over ``seconds``, taken as ``rounds`` windows that alternate between them (ABBA)."""
    windows: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
    for r in range(rounds):
        for server in servers if r % 2 == 0 else servers[::-1]:
            windows[server.name].append(measure(server, pool, clients, seconds / rounds, keep=True))
    merged = {}
    for name, parts in windows.items():
        latencies = [x for part in parts for x in part.pop("latencies")]
        point = {key: statistics.fmean(part[key] for part in parts) for key in parts[0]}
        load = Load(latencies=latencies)
        point.update(p50=load.percentile(0.5), p99=load.percentile(0.99), errors=sum(p["errors"] for p in parts))
        merged[name] = point
    return merged


async def open_loop(url: str, pool: list[str], rate: float, seconds: float, server: Server,
                    probe_seconds: float) -> dict[str, object]:
    """``rate`` requests a second for ``seconds`` whatever the answers; then one client alone, request after
    request, for ``probe_seconds``: when its latency is back."""
    load, rss, rng, requests = Load(), [server.rss_mb()], random.Random(7), bodies(pool)
    clients = [Client(url, connections=4) for _ in range(OPEN_LOOP_CLIENTS)]
    prober = Client(url)  # a user of its own, with no request of the load ahead of it
    clients.append(prober)
    try:
        tasks: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        sent, next_sample = 0, started
        while (now := time.perf_counter()) - started < seconds:
            due = int((now - started) * rate)
            while sent < due:
                task = asyncio.create_task(clients[sent % OPEN_LOOP_CLIENTS].post(rng.choice(requests), load))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if now >= next_sample:
                rss.append(server.rss_mb())
                next_sample = now + 0.5
            await asyncio.sleep(0.002)
        stopped = time.perf_counter()
        probes: list[tuple[float, float]] = []
        probe = Load()
        while (now := time.perf_counter()) - stopped < probe_seconds:
            await prober.post(rng.choice(requests), probe)
            if probe.latencies:
                probes.append((now - stopped, probe.latencies[-1]))
                probe.latencies.clear()
        await asyncio.gather(*tasks)
        rss.append(server.rss_mb())
    finally:
        for each in clients:
            each.close()
    return {"load": load, "sent": sent, "seconds": stopped - started, "rss": rss, "probes": probes}


def recovery(probes: list[tuple[float, float]], target: float, window: float = 0.25) -> float | None:
    """The start of the first ``window`` after which every window's p50 (of the probes sent in it) is within
    ``target`` seconds."""
    if not probes:
        return None
    end = probes[-1][0]
    starts = [i * window for i in range(int(end / window) + 1)]
    good = []
    for start in starts:
        inside = [latency for t, latency in probes if start <= t < start + window]
        good.append(not inside or statistics.median(inside) <= target)
    for i, start in enumerate(starts):
        if all(good[i:]):
            return start
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per point")
    parser.add_argument("--clients", default="1,8,32,128")
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    parser.add_argument("--pool", type=int, default=1000, help="texts in the mix")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "serve.md")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    pool = texts(args.pool)
    load_before = os.getloadavg()

    print("offline: engine predict ...", flush=True)
    ceiling = offline(args.run_dir, pool, work)
    print(f"  {ceiling['texts_per_s']:.1f} texts/s", flush=True)

    # Closed-loop clients never fill the queue past what they send: no admission refusals in these points.
    # "one stream": batching with the model in one thread (--streams 1), against the default's two on a CPU.
    servers = [Server("batching", ["--max-queue-ms", "600000"]),
               Server("off", ["--max-batch-requests", "1", "--max-queue-ms", "600000"]),
               Server("one stream", ["--streams", "1", "--max-queue-ms", "600000"])]
    for server in servers:
        server.start(args.run_dir, work)
    for server in servers:
        server.wait_ready()
    results: dict[str, list[dict[str, float]]] = {server.name: [] for server in servers}
    for n in clients:
        # One client is latency-bound: the servers are measured in alternating windows, so that what else
        # this machine does at the time weighs on both alike.
        points = interleaved(servers, pool, n, args.seconds) if n == 1 else {
            server.name: measure(server, pool, n, args.seconds) for server in servers}
        for server in servers:
            point = points[server.name]
            results[server.name].append(point)
            print(f"{server.name:10s} {n:4d} clients: {point['rps']:7.1f} req/s  p50 {point['p50']:7.1f} ms  "
                  f"p99 {point['p99']:7.1f} ms  padding {point['padding']:.2f}  batch {point['batch']:.1f}  "
                  f"client CPU {point['client_cpu']:.0%}  errors {point['errors']}", flush=True)
    codes = [server.stop() for server in servers]

    capacity = next((p["rps"] for p in results["batching"] if p["clients"] == 32), results["batching"][-1]["rps"])
    overload_server = Server("overload", [])
    overload_server.start(args.run_dir, work)
    overload_server.wait_ready()
    asyncio.run(closed_loop(overload_server.url, pool, 1, 3))  # warm: the idle latency, measured below
    idle = asyncio.run(closed_loop(overload_server.url, pool, 1, 5, warm=0.5))
    print(f"overload: {2 * capacity:.0f} req/s for {args.overload_seconds:.0f} s ...", flush=True)
    over = asyncio.run(open_loop(overload_server.url, pool, 2 * capacity, args.overload_seconds, overload_server,
                                 args.probe_seconds))
    overload_code = overload_server.stop()
    target = 2 * statistics.median(idle.latencies)
    recovered = recovery(over["probes"], target)  # type: ignore[arg-type]

    write(args.output, ceiling=ceiling, results=results, clients=clients, seconds=args.seconds,
          over=over, idle=idle, target=target, recovered=recovered, capacity=capacity,
          codes=[*codes, overload_code], load_before=load_before, load_after=os.getloadavg(), args=args)
    print(f"wrote {args.output}")


def write(path: Path, **r: object) -> None:
    ceiling: dict[str, float] = r["ceiling"]  # type: ignore[assignment]
    results: dict[str, list[dict[str, float]]] = r["results"]  # type: ignore[assignment]
    over: dict[str, object] = r["over"]  # type: ignore[assignment]
    load: Load = over["load"]  # type: ignore[assignment]
    idle: Load = r["idle"]  # type: ignore[assignment]
    rss: list[float] = over["rss"]  # type: ignore[assignment]
    args: argparse.Namespace = r["args"]  # type: ignore[assignment]
    on = {p["clients"]: p for p in results["batching"]}
    off = {p["clients"]: p for p in results["off"]}
    lines = [
        "# `engine serve` under load", "",
        f"{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"(load average {r['load_before'][0]:.1f} before, {r['load_after'][0]:.1f} after: a machine shared with "  # type: ignore[index]
        "other work), torch on the CPU.",
        f"`python bench/serve.py {args.run_dir} --seconds {args.seconds:g} --clients {args.clients} "
        f"--overload-seconds {args.overload_seconds:g}`: all-MiniLM-L6-v2 trained on examples/sentiment "
        "(`engine run examples/sentiment/task.json --set output_dir=/tmp/serve_run --set training.epochs=1`), "
        "max_length 128.",
        f"Texts: {args.pool}, 70% one sentence of examples/sentiment, 25% five, 5% fourteen (cut at 128 tokens); "
        "one text a request. Closed loop: each client sends its next request when the last is answered; "
        f"{args.seconds:g} s measured per point after 2 s of warm-up. These servers run with `--max-queue-ms 600000`, "
        "so that no request is refused; the overload server runs with the defaults.", "",
        "## Throughput and latency", "",
        f"Ceiling: `engine predict` on the same {ceiling['texts']:.0f} texts: **{ceiling['texts_per_s']:.1f} texts/s** "
        f"(prediction alone, the model loaded; the whole command took {ceiling['command_s']:.1f} s).", "",
        "| clients | batching: req/s | p50 ms | p99 ms | padding efficiency | inputs a batch | off: req/s | p50 ms | "
        "p99 ms | padding efficiency | batching / off | batching / offline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in r["clients"]:  # type: ignore[attr-defined]
        a, b = on[n], off[n]
        lines.append(f"| {n} | {a['rps']:.1f} | {a['p50']:.1f} | {a['p99']:.1f} | {a['padding']:.0%} | "
                     f"{a['batch']:.1f} | {b['rps']:.1f} | {b['p50']:.1f} | {b['p99']:.1f} | {b['padding']:.0%} | "
                     f"{a['rps'] / b['rps']:.2f}x | {a['rps'] / ceiling['texts_per_s']:.0%} |")
    one = {p["clients"]: p for p in results["one stream"]}
    lines += ["", "The model's streams: batching with the default (two on a CPU) against `--streams 1`:", "",
              "| clients | two streams: req/s | p50 ms | p99 ms | one stream: req/s | p50 ms | p99 ms | two / one |",
              "|---|---|---|---|---|---|---|---|"]
    for n in r["clients"]:  # type: ignore[attr-defined]
        a, b = on[n], one[n]
        lines.append(f"| {n} | {a['rps']:.1f} | {a['p50']:.1f} | {a['p99']:.1f} | {b['rps']:.1f} | {b['p50']:.1f} | "
                     f"{b['p99']:.1f} | {a['rps'] / b['rps']:.2f}x |")
    errors = sum(p["errors"] for points in results.values() for p in points)
    lines += ["", f"Errors in the closed-loop points: {errors:.0f}. Exit codes on SIGTERM: {r['codes']}.", ""]
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(load.statuses.items()))
    recovered = r["recovered"]
    lines += [
        "## Overload", "",
        f"Open loop at twice the capacity measured at 32 clients ({2 * r['capacity']:.0f} requests/s, whatever the "  # type: ignore[operator]
        f"answers) for {over['seconds']:.0f} s against `engine serve` with its defaults: {over['sent']} requests "
        f"sent; answers {statuses}.",
        f"Server memory (RSS): {rss[0]:.0f} MB before, {max(rss):.0f} MB at most, {rss[-1]:.0f} MB after: "
        f"**{max(rss) - rss[0]:+.0f} MB**.",
        f"Idle p50, one client: {statistics.median(idle.latencies) * 1000:.1f} ms. After the load stopped, one "
        f"client alone: p50 back within 2x idle (windows of 250 ms) "
        + (f"**{recovered:.2f} s** after the stop." if recovered is not None else "**not within the probe**."), "",
        "## Targets", "",
    ]
    ok = load.statuses.get("200", 0) + load.statuses.get("429", 0) == over["sent"]
    checks = [
        ("32 clients: batching >= 2x the requests/s of batching off", on[32]["rps"] / off[32]["rps"] >= 2
         if 32 in on else None),
        ("32 clients: batching >= 70% of engine predict's offline texts/s",
         on[32]["rps"] / ceiling["texts_per_s"] >= 0.7 if 32 in on else None),
        ("1 client: p50 within 2 ms of batching off", abs(on[1]["p50"] - off[1]["p50"]) <= 2 if 1 in on else None),
        ("overload: every request 200 or 429", ok),
        ("overload: memory grows by under 50 MB", max(rss) - rss[0] < 50),
        ("overload: p50 recovers within 2 s", recovered is not None and recovered <= 2),  # type: ignore[operator]
    ]
    lines += [f"- {'met' if met else 'NOT met' if met is not None else 'not measured'}: {what}"
              for what, met in checks]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (path.with_suffix(".json")).write_text(json.dumps({"ceiling": ceiling, "results": results, "overload": {
        "statuses": load.statuses, "sent": over["sent"], "rss_mb": rss, "recovered_s": recovered,
        "idle_p50_ms": statistics.median(idle.latencies) * 1000}}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
