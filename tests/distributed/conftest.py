"""Launching the engine under torchrun: two CPU processes (gloo), the code path `accelerate launch` takes on GPUs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def torchrun():
    """``torchrun(*args, env=None, timeout=...)``: ``python -m torch.distributed.run --nproc_per_node 2 ARGS``."""

    def launch(*args, env=None, timeout=600, processes=2):
        with socket.socket() as free:  # a port of its own: other runs on the machine may hold torchrun's default
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_port", str(port), *map(str, args)]
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_PLUGINS": "", "ACCELERATE_USE_CPU": "1",
                    "OMP_NUM_THREADS": "1", **(env or {})}
        return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout)

    return launch
