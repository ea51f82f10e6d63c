"""The `engine` command ends without the interpreter's teardown, and loses nothing a normal exit would keep."""

import gzip
import os
import subprocess
import sys

import pytest

# What a careless plugin leaves behind at exit: files it never closed (text, gzip, binary), a thread still
# writing, an atexit handler, output still in stdout's buffer (a pipe: fully buffered).
PROGRAM = r"""
import atexit, gzip, sys, threading, time
import torch
from engine.cli.shutdown import exit_process

folder = sys.argv[1]
log = open(f"{folder}/log.txt", "w")
log.write("line one\n" * 1000 + "last line")
packed = gzip.open(f"{folder}/rows.gz", "wt")
packed.write("row\n" * 5000)
raw = open(f"{folder}/raw.bin", "wb", buffering=1 << 20)
raw.write(b"x" * 1234)

def late():
    time.sleep(0.5)
    with open(f"{folder}/thread.txt", "w") as f:
        f.write("written by a thread")

threading.Thread(target=late).start()
atexit.register(lambda: open(f"{folder}/atexit.txt", "w").write("atexit ran"))
print("to stdout", end="")
print("to stderr", end="", file=sys.stderr)
exit_process(int(sys.argv[2]))
"""


@pytest.mark.parametrize("fast", ["1", "0"])
def test_what_a_normal_exit_keeps_is_kept(tmp_path, fast):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    env = {**os.environ, "ENGINE_FAST_EXIT": fast}
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "3"], capture_output=True, text=True, env=env)
    assert done.returncode == 3
    assert done.stdout == "to stdout"
    assert done.stderr.endswith("to stderr")
    assert (tmp_path / "log.txt").read_text().endswith("line one\nlast line")
    with gzip.open(tmp_path / "rows.gz", "rt") as rows:
        assert rows.read() == "row\n" * 5000  # complete, trailer and all
    assert (tmp_path / "raw.bin").read_bytes() == b"x" * 1234
    assert (tmp_path / "thread.txt").read_text() == "written by a thread"
    assert (tmp_path / "atexit.txt").read_text() == "atexit ran"


def test_the_fast_exit_skips_the_teardown(tmp_path):
    """The point of it: an object whose finalizer would run at the interpreter's teardown is not finalized."""
    script = tmp_path / "program.py"
    script.write_text(
        "import sys, torch\nfrom engine.cli.shutdown import exit_process\n"
        "class Slow:\n    def __del__(self):\n        print('finalized', end='')\n"
        "keep = Slow()\nexit_process(0)\n"
    )
    fast = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    slow = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env={**os.environ, "ENGINE_FAST_EXIT": "0"}
    )
    assert (fast.returncode, fast.stdout) == (0, "")
    assert (slow.returncode, slow.stdout) == (0, "finalized")


def test_the_command_keeps_its_exit_code(tmp_path):
    """`python -m engine` exits through engine.cli.shutdown with the command's own code."""
    task = tmp_path / "task.json"
    task.write_text('{"task": "classification", "data": {"train": "missing.tsv"}}')
    done = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(task)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode not in (0, None)
    assert "missing.tsv" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
