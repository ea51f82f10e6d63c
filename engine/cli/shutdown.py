"""How the `engine` command ends: what Python's exit does that matters, without the interpreter's teardown.

A process that imported torch and transformers spends 1.5 to 2.5 s at exit unloading modules and freeing objects
it will never use again; this exit takes 0.26 s (`python bench/exit_time.py`). The command skips the teardown:
once its work is done it does what a normal exit does for a program's data, in the same order, then ends with
``os._exit``:

1. waits for the threads that are not daemons (a tracker still writing, a plugin's worker);
2. runs the ``atexit`` handlers (logging, trackers, torch.distributed, multiprocessing's workers);
3. closes every file object still open for writing (a plugin that never closed its log loses nothing, and a
   compressed file still gets its trailer), then flushes stdout and stderr.

Only the command does this (``engine`` and ``python -m engine``); ``engine.cli.main()`` called from Python
returns as any function does. ``ENGINE_FAST_EXIT=0`` restores the interpreter's own exit.
"""

from __future__ import annotations

import _io
import atexit
import contextlib
import gc
import io
import os
import sys
import threading
from typing import NoReturn

# The base of every stream class, C or Python (io.IOBase's own base; io.IOBase is an ABC).
STREAM_BASE: type = getattr(_io, "_IOBase", io.IOBase)


def enabled() -> bool:
    """Whether to end quickly: only when torch was imported (otherwise there is little to tear down) and not
    switched off."""
    switch = os.environ.get("ENGINE_FAST_EXIT", "1").strip().lower()
    return "torch" in sys.modules and switch not in ("0", "false", "no", "off")


def exit_process(code: int) -> NoReturn:
    """End the process with ``code``: the slow teardown skipped when ``enabled()``, a normal exit otherwise."""
    if not enabled():
        sys.exit(code)
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    close_open_files()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach the reader
            pass
    os._exit(code)


def close_open_files() -> None:
    """Close the file objects still open for writing, as the interpreter's teardown would, wrappers before what
    they wrap (a text file before its gzip stream before its file). stdio is flushed, not closed."""
    objects = gc.get_objects()
    # Checked per type, against the C base every stream derives from (io.IOBase is an ABC, whose first checks of a
    # thousand types take 0.7 s); type(obj), not isinstance: some objects warn when asked their __class__.
    streams = {t for t in set(map(type, objects)) if issubclass(t, STREAM_BASE)}
    files = [obj for obj in objects if type(obj) in streams and _open_for_writing(obj) and not _standard(obj)]
    while files:
        ids = {id(f) for f in files}
        wrapped = {id(inner) for f in files for inner in _attributes(f) if id(inner) in ids}
        outermost = [f for f in files if id(f) not in wrapped] or files  # a cycle: any order will do
        for f in outermost:
            with contextlib.suppress(Exception):  # a broken stream: its data is gone either way
                f.close()
        done = {id(f) for f in outermost}
        files = [f for f in files if id(f) not in done and _open_for_writing(f)]


def _open_for_writing(obj: io.IOBase) -> bool:
    try:
        return not obj.closed and obj.writable()
    except Exception:  # detached, or closed underneath
        return False


def _standard(obj: io.IOBase) -> bool:
    """Whether ``obj`` is stdin, stdout or stderr, or their buffer or file descriptor."""
    try:
        return obj.fileno() in (0, 1, 2)
    except Exception:  # no descriptor (an in-memory stream, a closed one)
        return False


def _attributes(obj: object) -> list[object]:
    """What ``obj`` refers to: a C stream's buffer or raw file, a Python stream's attributes."""
    found: list[object] = []
    for ref in gc.get_referents(obj):
        found.extend(ref.values() if isinstance(ref, dict) else [ref])
    return found
