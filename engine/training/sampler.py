"""Which task each training batch of a multi-task run comes from: a draw from the seed and the batch's global
number alone, so every process draws the same task, and a resumed run the same sequence, with no state to save."""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping
from typing import Any


def task_probabilities(sizes: Mapping[str, int], sampler: Any) -> dict[str, float]:
    """Each task's chance of a batch: ``proportional`` to its batches, ``uniform``, or ``temperature``
    (batches^(1/T), normalised); ``sampler`` as task.json records it (a name or ``{"name": ..., "T": ...}``)."""
    name = sampler if isinstance(sampler, str) else sampler.get("name", "proportional")
    if name == "uniform":
        weights = dict.fromkeys(sizes, 1.0)
    elif name == "temperature":
        power = 1.0 / float(sampler.get("T", 2.0))
        weights = {task: float(size) ** power for task, size in sizes.items()}
    elif name == "proportional":
        weights = {task: float(size) for task, size in sizes.items()}
    else:
        raise ValueError(f"unknown sampler {name!r}")
    total = sum(weights.values())
    return {task: weight / total for task, weight in weights.items()}


class TaskSampler:
    """``task_at(n)``: the task of the run's ``n``-th training batch (counted over the whole run, from 0), from the
    seed and ``n`` only (a string seed: Python hashes it with SHA-512, the same in every process and version)."""

    def __init__(self, sizes: Mapping[str, int], sampler: Any, seed: int) -> None:
        self.probabilities = task_probabilities(sizes, sampler)
        self.names = list(self.probabilities)
        self.seed = seed
        self.cumulative: list[float] = []
        total = 0.0
        for name in self.names:
            total += self.probabilities[name]
            self.cumulative.append(total)

    def task_at(self, n: int) -> str:
        draw = random.Random(f"engine.tasks:{self.seed}:{n}").random() * self.cumulative[-1]
        return self.names[min(bisect.bisect_right(self.cumulative, draw), len(self.names) - 1)]
