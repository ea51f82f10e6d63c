"""Run several task files one after another in one torchrun launch, so the process group starts once.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed/run_many.py EXIT_CODES.json TASK.json...

Each run is a plain ``engine run TASK``; the exit code of each is written to EXIT_CODES.json by the main process.
Launching torchrun once per run would cost the suite two interpreter start-ups and imports per configuration.
"""

import json
import sys

from accelerate import Accelerator
from accelerate.state import PartialState

from engine.cli.commands import main


def run_all(codes_path: str, tasks: list[str]) -> None:
    # A run ends by destroying the process group; the next run in this process needs it still.
    Accelerator.end_training = lambda self: None
    codes = {task: main(["run", task]) for task in tasks}
    state = PartialState()
    if state.is_main_process:
        with open(codes_path, "w", encoding="utf-8") as f:
            json.dump(codes, f)
    state.destroy_process_group()


if __name__ == "__main__":
    run_all(sys.argv[1], sys.argv[2:])
