"""`engine serve`'s processes: uvicorn running the app, draining on SIGTERM, and, with ``--workers N``, N such
processes sharing one listening socket.

On SIGTERM (or Ctrl+C) the server drains: the requests already admitted are answered, new ones get 503 (and
``/ready`` too, so a load balancer stops sending), then it exits 0. A second signal stops it without waiting.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from engine import console
from engine.serve.memory import configure_allocator
from engine.serve.settings import ServeSettings

if TYPE_CHECKING:
    from engine.serve.app import ServerState


PR_SET_PDEATHSIG = 1  # prctl's option, from linux/prctl.h
#: How long an idle connection stays open. Longer than clients' own (httpx and most pools keep one 5 s, load
#: balancers 60 s): a server that closes first races a client sending its next request on the connection, which
#: then fails with a connection error (uvicorn's 5 s gave bench/serve.py's overload two ReadErrors in 22,199).
KEEP_ALIVE_S = 75


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with SIGTERM and SIGINT draining first (uvicorn's own shutdown closes the listening socket
    at once, so a request sent meanwhile finds no server rather than a 503)."""

    def __init__(self, config: uvicorn.Config, state: ServerState, *, announce: bool) -> None:
        super().__init__(config)
        self.state, self.announce = state, announce
        self.exit_code = 0
        self.draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.announce and self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            host = f"[{host}]" if ":" in host else host
            console.info(f"engine serve: {self.state.settings.run_dir} on http://{host}:{port} (API: "
                         f"http://{host}:{port}/docs); loading the model, GET /ready says when it is in")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining:  # a second signal: stop without waiting
            self.should_exit = True
            self.force_exit = sig == signal.SIGINT
            return
        self.draining = True
        try:
            loop = asyncio.get_running_loop()  # a signal handler runs in the main thread, the event loop's
        except RuntimeError:  # not serving yet, or any more
            self.should_exit = True
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self.drain()))

    async def drain(self) -> None:
        if self.announce:
            console.info(f"engine serve: draining ({self.state.inside} request(s) in progress; new ones get 503)")
        await self.state.drain()
        self.should_exit = True

    def failed(self, error: BaseException) -> None:
        """The model did not load: say why and stop, exiting 1."""
        console.error(f"engine serve: the model did not load: {error}")
        self.exit_code = 1
        self.should_exit = True


def serve(settings: ServeSettings) -> int:
    """Serve until SIGTERM; the exit code."""
    if settings.workers == 1:
        return run_server(settings)
    return run_workers(settings)


def run_server(settings: ServeSettings, sockets: list[socket.socket] | None = None, *, announce: bool = True) -> int:
    from engine.serve.app import create_app

    configure_allocator()  # before the server's threads make arenas of their own (engine.serve.memory)
    server: DrainingServer | None = None

    def failed(error: BaseException) -> None:
        assert server is not None
        server.failed(error)

    app = create_app(settings, on_failure=failed)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            lifespan="on", timeout_keep_alive=KEEP_ALIVE_S)
    server = DrainingServer(config, app.state.engine, announce=announce)
    server.run(sockets=sockets)
    return server.exit_code if server.started or server.exit_code else 1


def run_workers(settings: ServeSettings) -> int:
    """``settings.workers`` processes, each with its own model and batcher, accepting on one socket; SIGTERM is
    passed on to each (each drains), and the exit code is 0 when every one stopped cleanly. One that dies stops
    all."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)  # connections wait here until a worker accepts them
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(settings, sock), name=f"engine-serve-{n}")
               for n in range(settings.workers)]
    asked = False  # a SIGTERM or SIGINT came

    def stop_all() -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal asked
        asked = True
        stop_all()

    def died(worker: BaseProcess) -> None:
        if not asked:
            console.error(f"engine serve: {worker.name} exited with {worker.exitcode}; stopping the others")
            stop_all()

    # The handlers come before the address is announced: a SIGTERM from then on drains, never kills.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        console.info(f"engine serve: {settings.run_dir} on http://{host}:{port} with {settings.workers} processes "
                     f"(API: http://{host}:{port}/docs); loading the model, GET /ready says when it is in")
        for worker in workers:
            if asked:  # stopped while the others started: this one never starts
                break
            worker.start()
        workers = [worker for worker in workers if worker.pid is not None]
        if asked:
            stop_all()  # one started after the signal was passed on
        wait_for(workers, died)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    # A worker the SIGTERM found still starting (before it could drain) ends with -SIGTERM: stopped, as asked.
    clean = (0, -signal.SIGTERM) if asked else (0,)
    return 0 if all(worker.exitcode in clean for worker in workers) else 1


def wait_for(workers: Sequence[BaseProcess], died: Callable[[BaseProcess], None]) -> None:
    """Until every worker has exited; ``died`` is told of the first to exit non-zero."""
    told = False
    # The living are listed once per round: asked twice, the last one could die in between, leaving nothing to
    # wait on (and wait([]) waits forever). A dead one's sentinel is ready, so the next round sees it.
    while alive := [worker for worker in workers if worker.is_alive()]:
        multiprocessing.connection.wait([worker.sentinel for worker in alive])
        dead = [worker for worker in workers if not worker.is_alive() and worker.exitcode != 0]
        if dead and not told:
            told = True
            died(dead[0])


def _worker(settings: ServeSettings, sock: socket.socket) -> None:
    """One of several processes: the CPU's cores shared between them, the shared socket served; SIGTERM when the
    parent dies, however it dies (a worker left behind would hold the port)."""
    import sys

    import torch

    _signal_when_parent_dies(signal.SIGTERM)

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.workers))
    sys.exit(run_server(settings, [sock], announce=False))



def _signal_when_parent_dies(sig: int) -> None:
    """Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    import ctypes
    import ctypes.util

    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    except (OSError, AttributeError, TypeError):
        return
    prctl(PR_SET_PDEATHSIG, sig)
