"""The parent of `engine serve --workers N` waits for its workers without hanging: a worker that dies between two
looks at the others is still waited for once, the first to fail is reported once, and a SIGTERM that comes the
moment the address is announced (before any worker started) stops it cleanly, exiting 0."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from engine.serve import server
from engine.serve.server import wait_for
from engine.serve.settings import ServeSettings


class Worker:
    """A process as `wait_for` sees it: alive for the first ``looks`` questions, and dead just after the last (its
    sentinel, a pipe, becomes readable as a dead child's does), then exited with ``exitcode``."""

    def __init__(self, name: str, looks: int, exitcode: int) -> None:
        self.name, self.looks, self.final = name, looks, exitcode
        self.sentinel, self._writer = os.pipe()
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        if self.looks > 0:
            self.looks -= 1
            if not self.looks:  # it dies right after answering
                os.close(self._writer)
            return True
        self.exitcode = self.final
        return False


def run(workers: list[Worker]) -> list[str]:
    told: list[str] = []
    thread = threading.Thread(target=wait_for, args=(workers, lambda worker: told.append(worker.name)), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "wait_for still waiting on workers that have all exited"
    return told


def test_a_worker_dying_between_two_looks_is_not_waited_on_forever():
    # Alive at the first look of a round, dead at the second: the old loop then waited on no sentinel at all.
    assert run([Worker("engine-serve-0", looks=1, exitcode=0)]) == []


@pytest.mark.parametrize("codes", [(0, 0, 0), (1, 0, -15), (0, 3, 1)])
def test_the_first_worker_to_fail_is_reported_once(codes):
    workers = [Worker(f"engine-serve-{n}", looks=2 * n + 1, exitcode=code) for n, code in enumerate(codes)]
    told = run(workers)
    failed = [worker.name for worker in workers if worker.final != 0]
    assert told == failed[:1]
    assert all(worker.exitcode == worker.final for worker in workers)


def test_a_sigterm_as_the_address_is_announced_starts_no_worker_and_exits_0(monkeypatch):
    # A supervisor reads the address, then stops the server at once: the signal lands before the workers exist.
    started: list[str] = []
    monkeypatch.setattr(server.console, "info", lambda message: os.kill(os.getpid(), signal.SIGTERM))
    monkeypatch.setattr("multiprocessing.process.BaseProcess.start", lambda process: started.append(process.name))
    before = signal.getsignal(signal.SIGTERM)
    assert server.run_workers(ServeSettings(run_dir=Path("unused"), port=0, workers=2)) == 0
    assert started == []
    assert signal.getsignal(signal.SIGTERM) is before  # the handler it installed is gone again
