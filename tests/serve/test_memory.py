"""The server's allocator settings: fewer arenas and no trim but the server's, unless the user chose; the warm-up's
footprint kept, and a trim only past it, at most once an interval."""

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


ALL = [("mallopt", (memory.M_ARENA_MAX, memory.ARENAS)),
       ("mallopt", (memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD)),
       ("mallopt", (memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD))]


def test_the_allocator_is_set_unless_the_environment_says(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    for variable in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(variable, raising=False)
    assert memory.configure_allocator() == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
    assert libc.calls == ALL
    libc.calls.clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert memory.configure_allocator() == ["MALLOC_TRIM_THRESHOLD_"]
    assert libc.calls == ALL[2:]


def test_nothing_is_done_off_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.configure_allocator() == []
    trim = memory.Trimmer()
    trim.hold()
    trim()  # no C library to call: nothing happens, nothing fails


def test_the_trim_keeps_the_ready_footprint_and_runs_at_most_once_an_interval(monkeypatch):
    libc, now, resident = FakeLibc(), [100.0], [700.0]
    monkeypatch.setattr(memory, "_glibc", lambda: libc)
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(memory, "resident_mb", lambda: resident[0])
    trim = memory.Trimmer(every=1.0, margin=8.0)
    resident[0] = 900.0
    trim()  # warming up: the memory of its largest batches is to stay
    trim.hold()
    assert trim.ready == 900.0
    resident[0] = 905.0
    trim()  # within the margin: nothing handed back
    assert libc.calls == []
    resident[0] = 920.0
    trim()
    now[0] += 0.5
    trim()  # over, but trimmed just before
    now[0] += 0.6
    trim()
    assert libc.calls == [("malloc_trim", (0,)), ("malloc_trim", (0,))]
    assert trim.trims == 2


def test_the_real_c_library_is_found_and_trims():
    if memory._glibc() is None:  # musl, macOS
        return
    assert memory.resident_mb() > 10
    trim = memory.Trimmer(every=0.0, margin=-1e9)
    trim.hold()
    trim()
    assert trim.trims == 1
