"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the new one, never half of one.

Every file engine writes for a user goes through here: a temporary file in the same folder (so the rename stays
on one file system), made readable as an ordinary file is, renamed over the target once complete, and removed if
the write fails.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import EngineError


def check_not_an_input(outputs: Iterable[Path], inputs: Iterable[Path], flag: str = "--output") -> None:
    """The one rule for every command that writes: it never writes onto one of its own inputs (the same file by
    any path, or an existing file inside an input folder such as a run directory). Checked before any work, so a
    refusal writes nothing."""
    sources = [Path(p) for p in inputs]
    for output in map(Path, outputs):
        for source in sources:
            if _same_file(output, source):
                raise EngineError(f"{flag} {output} is this command's input {source}: writing there would replace "
                                  "it; nothing was written. Choose another path")
            if source.is_dir() and output.is_file() and output.resolve().is_relative_to(source.resolve()):
                raise EngineError(f"{flag} {output} would replace a file of {source}, which this command reads; "
                                  "nothing was written. Choose a path outside it")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (by any means: a library's ``save``); renamed to ``path`` when
    the block ends without error, removed when it fails. The suffix is kept, for writers that go by it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from the other users of a shared machine
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write text lines (each ending in its own newline) to ``path``, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        f.writelines(lines)


def write_text(path: Path, text: str) -> None:
    write_lines(path, [text])


def write_json(path: Path, data: Any) -> None:
    """JSON, indented, atomically."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place; the old one goes only once the new one is whole."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
