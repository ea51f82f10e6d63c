"""The server's allocator settings: fewer arenas unless the user chose, and a trim at most once a second."""

from __future__ import annotations

from engine.serve import memory


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def mallopt(self, *args: int) -> int:
        self.calls.append(("mallopt", args))
        return 1

    def malloc_trim(self, *args: int) -> int:
        self.calls.append(("malloc_trim", args))
        return 1


def test_arenas_are_limited_unless_the_environment_says(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_arenas() is True
    assert libc.calls == [("mallopt", (memory.M_ARENA_MAX, memory.ARENAS))]
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_arenas() is False
    assert len(libc.calls) == 1


def test_nothing_is_done_off_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_arenas() is False
    memory.Trimmer()()  # no C library to call: nothing happens, nothing fails


def test_the_trim_runs_at_most_once_per_interval(monkeypatch):
    libc, now = FakeLibc(), [100.0]
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    trim = memory.Trimmer(every=1.0)
    trim()
    now[0] += 0.5
    trim()
    now[0] += 0.6
    trim()
    assert libc.calls == [("malloc_trim", (0,)), ("malloc_trim", (0,))]


def test_the_real_c_library_is_found_and_trims():
    if memory._glibc() is None:  # musl, macOS
        return
    memory.Trimmer(every=0.0)()
