"""A server's memory kept flat under load: glibc's allocator told to use few arenas and to keep what it frees, the
warm-up's largest batches (in every stream) held as the server's footprint, and free memory handed back to the
system only when the process grows past that, at most once a second.

Every thread that allocates (the event loop, the model's streams, torch's intra-op threads) gets an arena of its own
from glibc, up to eight per core, and batches of ever-changing shapes leave each arena with fragments it keeps: in
bench/serve.py's overload a server grew by 140 to 160 MB over a minute with no Python object left behind, where two
arenas held it to a few tens of MB. A batch in flight holds about 28 MB (1024 tokens of all-MiniLM-L6-v2); by default
glibc maps a block that large on its own and unmaps it when freed, and hands an arena's free top back past 128 KB,
so that an idle server is small and a busy one is the idle one plus the batches in flight, faulted in page by page
on every batch. Here blocks up to 32 MB come from the arenas and stay there when freed: the warm-up's largest batches
take, up front, the memory the server computes in, and load reuses it. A trim (``malloc_trim``) runs when the
process is more than ``MARGIN_MB`` over that footprint (fragments of changing shapes), at most once a second: the
server stays within a few MB of its ready size. ``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in the environment, when set, win. Elsewhere than on glibc (macOS, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from typing import Any

# mallopt's parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
#: Arenas a server's process may use: one for the event loop and one for the model's streams.
ARENAS = 2
#: Blocks up to this size come from the arenas (glibc's largest threshold on 64 bits), not a mapping of their own.
MMAP_THRESHOLD = 32 * 2**20
#: glibc hands an arena's free top back only past this: in effect never; the server's trim decides.
TRIM_THRESHOLD = 2**30
#: The least time between two trims (one costs about a millisecond per hundred MB held); the check before it, a
#: read of /proc/self/statm, costs 10 microseconds a batch.
TRIM_EVERY_S = 0.1
#: How far past its ready size the server may grow before a trim.
MARGIN_MB = 8.0


def _glibc() -> Any:
    """glibc's functions, or None where the C library is another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        return libc
    except (OSError, AttributeError):
        return None


def configure_allocator() -> list[str]:
    """Before the server's threads start: at most ``ARENAS`` arenas, blocks up to ``MMAP_THRESHOLD`` from them, and
    no trim but the server's; each unless the environment sets it. The settings made, by name."""
    libc = _glibc()
    if libc is None:
        return []
    made = []
    for variable, parameter, value in (("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
                                       ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                       ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        if not os.environ.get(variable) and libc.mallopt(parameter, value):
            made.append(variable)
    return made


def resident_mb() -> float | None:
    """This process's resident memory (Linux's /proc), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class Trimmer:
    """Hands free heap memory back to the system (``malloc_trim``) when the process has grown more than ``margin``
    MB past its ready size (``hold()``, after the warm-up; before it, whenever called), at most once every
    ``every`` seconds: called by the model's streams after each batch (a trim costs about a millisecond)."""

    def __init__(self, every: float = TRIM_EVERY_S, margin: float = MARGIN_MB) -> None:
        self.libc, self.every, self.margin, self.last = _glibc(), every, margin, 0.0
        self.ready: float | None = None
        self.trims = 0

    def hold(self) -> None:
        """The process's size now is its footprint: trims keep it, and trim only what grows past it."""
        self.ready = resident_mb()

    def __call__(self) -> None:
        now = time.monotonic()
        if self.libc is None or self.ready is None or now - self.last < self.every:
            return
        resident = resident_mb()
        if resident is not None and resident <= self.ready + self.margin:
            return
        self.last = now
        self.trims += 1
        self.libc.malloc_trim(0)
