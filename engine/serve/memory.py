"""A server's memory kept flat under load: glibc's allocator told to use few arenas, and free memory handed back to
the system after batches, at most once a second.

Every thread that allocates (the event loop, the model's thread, torch's intra-op threads) gets an arena of its
own from glibc, up to eight per core, and batches of ever-changing shapes leave each arena with fragments it keeps:
in bench/serve.py's overload a server grew by 140 to 160 MB over a minute with no Python object left behind, where
two arenas held it to a few tens of MB at the same speed. Even so, a server that never idles (an overload) grew step
by step, 670 to 740 MB in 30 s, when the trim waited for an empty queue; trimmed once a second whatever the queue
holds, it stays within the memory of a batch in flight (bench/serve.py). ``MALLOC_ARENA_MAX`` in the environment,
when set, wins.
Elsewhere than on glibc (macOS, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h
#: Arenas a server's process may use: one for the event loop and one for the model's thread.
ARENAS = 2
#: The least time between two trims (one costs about a millisecond per hundred MB held).
TRIM_EVERY_S = 1.0


def _glibc() -> Any:
    """glibc's functions, or None where the C library is another."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        return libc
    except (OSError, AttributeError):
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas from now on (before the server's threads start); whether it was set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas))


class Trimmer:
    """Hands free heap memory back to the system (``malloc_trim``), at most once every ``TRIM_EVERY_S`` seconds:
    called by the model's thread after each batch (a trim costs about a millisecond: a thousandth of the time)."""

    def __init__(self, every: float = TRIM_EVERY_S) -> None:
        self.libc, self.every, self.last = _glibc(), every, 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if self.libc is None or now - self.last < self.every:
            return
        self.last = now
        self.libc.malloc_trim(0)
