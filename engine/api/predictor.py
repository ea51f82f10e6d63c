"""``engine.load``: a trained model kept in memory, on its device, between calls; ``Predictor.predict`` and
``Predictor.evaluate`` give the records and metrics `engine predict` and `engine evaluate` give for the same rows,
through the same inference path (``engine.inference``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine import console
from engine.api.plugins import plugin_manager
from engine.data.split import Split
from engine.errors import EngineError
from engine.inference.inputs import is_one_input, split_of_inputs
from engine.inference.loading import LoadedModel, load_model, load_tasks, model_dir_of, read_input
from engine.inference.loop import Placed, place_model
from engine.inference.multitask import predict_tasks
from engine.inference.predict import evaluate_split, predict_split
from engine.model.saved import read_engine_file
from engine.plugins.manager import PluginManager

QUANTIZE = (None, "int8")


def load(path: str | os.PathLike[str], quantize: str | None = None, *, batch_size: int = 64,
         trust_plugins: bool = False, plugins: str | Iterable[str] | None = None,
         block_plugins: str | Iterable[str] = (), verbose: bool = False) -> Predictor:
    """A run directory's model (or a model/ or adapter/ folder), loaded once for any number of calls.

    ``quantize="int8"``: the encoder's linear layers in int8, on the CPU (as ``--quantize int8``). ``batch_size``:
    the rows a forward pass takes. ``trust_plugins``, ``plugins``, ``block_plugins``: as ``--trust-plugins``,
    ``--plugins`` and ``--block-plugins``. ``verbose``: print what `engine predict` prints while predicting
    (tokenizing, warnings such as truncated rows, progress); by default predicting prints nothing.
    """
    manager = plugin_manager(only=plugins, block=block_plugins)
    if "tasks" in read_engine_file(model_dir_of(Path(path))):  # a multi-task model: every task, one encoder
        tasks = load_tasks(Path(path), manager, trust_plugins=trust_plugins)
        return Predictor(next(iter(tasks.values())), manager, quantize=quantize, batch_size=batch_size,
                         verbose=verbose, tasks=tasks)
    loaded = load_model(Path(path), manager, trust_plugins=trust_plugins)
    return Predictor(loaded, manager, quantize=quantize, batch_size=batch_size, verbose=verbose)


class Predictor:
    """A loaded model and the Accelerator that placed it, kept between calls. Build it with ``engine.load``."""

    def __init__(self, loaded: LoadedModel, manager: PluginManager, *, quantize: str | None = None,
                 batch_size: int = 64, verbose: bool = False, tasks: dict[str, LoadedModel] | None = None) -> None:
        if quantize not in QUANTIZE:
            raise EngineError(f"quantize: expected None or 'int8', got {quantize!r}")
        if batch_size < 1:
            raise EngineError(f"batch_size: expected a positive number of rows, got {batch_size}")
        self.loaded, self.manager, self.batch_size, self.verbose = loaded, manager, batch_size, verbose
        self.placed = place_model(loaded, quantize)
        #: A multi-task model's tasks (their models share one encoder object), each placed; None for one task.
        self.tasks = tasks
        self.placed_tasks = {name: self.placed if t is loaded else place_model(t)
                             for name, t in (tasks or {}).items()}

    @property
    def model_dir(self) -> Path:
        """The folder the model was loaded from (a run's model/ or adapter/)."""
        return self.loaded.directory

    @property
    def task(self) -> Any:
        """The task object (an ``engine.Task``), with what training taught it (its labels, tags, targets)."""
        return self.loaded.task

    def __repr__(self) -> str:
        return f"Predictor({str(self.model_dir)!r}, task={self.loaded.meta['task'].get('name')!r})"

    def of_task(self, task: str | None) -> tuple[LoadedModel, Placed]:
        """The loaded model and placement of ``task`` (a multi-task model's task; None: the one task)."""
        if self.tasks is None:
            if task is not None:
                raise EngineError(f"task={task!r}: this is a one-task model; leave task out")
            return self.loaded, self.placed
        if task not in self.tasks:
            given = f"no task {task!r}" if task is not None else "task=None"
            raise EngineError(f"{given}: name one of the model's tasks: {', '.join(self.tasks)}")
        return self.tasks[task], self.placed_tasks[task]

    def predict_all(self, inputs: Any, batch_size: int) -> Any:
        """Every task of a multi-task model, in one encoder pass per batch: ``{NAME: record}`` per input."""
        assert self.tasks is not None
        splits = {name: split_of_inputs(loaded, inputs, labelled=False) for name, loaded in self.tasks.items()}
        with self.printing():
            records = predict_tasks(self.tasks, splits, {n: p.model for n, p in self.placed_tasks.items()},
                                    self.placed.accelerator.device, batch_size)
        return records[0] if is_one_input(inputs) else records

    def predict(self, inputs: Any, *, batch_size: int | None = None, task: str | None = None) -> Any:
        """The records `engine predict` writes for ``inputs``: one record (a dict) for one text, pair or mapping,
        else a list of records in the inputs' order.

        ``inputs``: a text; a ``(text, text_pair)`` tuple; a mapping with the training data's columns (or ``text``,
        ``text_pair``); a list of these, or of token lists (``["paul", "is", "in", "berlin"]``) for a task that tags
        words; a pandas DataFrame with the training data's columns; or a ``pathlib.Path`` to a file, read as
        ``engine predict --input`` reads it. A row's result does not depend on the other rows given with it.
        """
        if self.tasks is not None and task is None:
            return self.predict_all(inputs, batch_size or self.batch_size)
        loaded, placed = self.of_task(task)
        split = self.split(inputs, labelled=False, loaded=loaded)
        with self.printing():
            records = predict_split(loaded, split, batch_size=batch_size or self.batch_size, placed=placed)
        return records[0] if is_one_input(inputs) else records

    def evaluate(self, data: Any, *, batch_size: int | None = None, task: str | None = None) -> dict[str, float]:
        """The metrics `engine evaluate` gives on labelled ``data`` (the run's metrics and the loss, by name).

        ``data``: a pandas DataFrame, a mapping or a list of mappings with the training data's text and label
        columns, or a ``pathlib.Path`` to a file, read as ``engine evaluate --data`` reads it."""
        loaded, placed = self.of_task(task)
        split = self.split(data, labelled=True, loaded=loaded)
        with self.printing():
            return evaluate_split(loaded, self.manager, split, batch_size=batch_size or self.batch_size,
                                  placed=placed)

    def split(self, inputs: Any, *, labelled: bool, loaded: LoadedModel | None = None) -> Split:
        """``inputs`` as the split the inference reads: a file read as the training data was, or in-memory inputs
        (``engine.inference.inputs``). ``loaded``: a multi-task model's task (default: the model's one task)."""
        loaded = loaded or self.loaded
        if isinstance(inputs, os.PathLike):
            return read_input(loaded, self.manager, Path(inputs), labelled=labelled)
        return split_of_inputs(loaded, inputs, labelled=labelled)

    @contextmanager
    def printing(self) -> Iterator[None]:
        """Quiet while predicting, unless ``verbose``."""
        if self.verbose:
            yield
            return
        with quiet():
            yield


class QuietConsole:
    """The console silenced while any caller (of any thread) is inside, then as it was before the first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.before = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if not self.inside:
                self.before = console.console.quiet
                console.set_quiet(True)
            self.inside += 1
        try:
            yield
        finally:
            with self.lock:
                self.inside -= 1
                if not self.inside:
                    console.set_quiet(self.before)


quiet = QuietConsole()
