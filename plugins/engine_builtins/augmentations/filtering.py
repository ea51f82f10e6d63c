"""The label-preservation filter: drop augmented rows a finished run labels differently.

``{"name": "label_filter", "run": "runs/baseline"}`` placed after other augmentations in the task file's ``augment``
list predicts, with that run's model, every row an earlier augmentation produced (the rows the core marked
``_augmented``) and drops those whose prediction differs from the row's label; the training rows as read (no
``_augmented``) always pass, as the same objects. What counts as the same label:

- classification (and any task whose predictions carry a ``label``, such as an ordinal one): the predicted label
  equals the row's (for multi-label rows, the same set of labels);
- tagging (a task with one tag per word): the predicted tags, read as BIO, equal the row's tags read as BIO, or at
  least a ``min_agreement`` share of them do;
- regression (a task that predicts ``targets``): every predicted value is within ``tolerance`` of the row's. There is
  no sound default distance on a scale the filter does not know, so a regression run without ``tolerance`` is a
  ConfigError.

What was kept is reported twice: the filter writes ``label_filter: kept K of N augmented rows (S%)`` to the console
after its first chunk, then at most every ``ENGINE_PROGRESS_SECONDS`` (30 s) with the totals so far; and the core
counts rows in and out of every step, so the filter's ``rows_out - rows_in`` in the run's plan, manifest and report
is minus the number of rows it dropped over the whole split (it produces no rows). The totals so far are also the
augmentation's ``totals`` attribute (``{"augmented": N, "kept": K}``).

The run (``run``: a run directory or its ``model/`` folder; a relative path is read from the task file's folder, as
data paths are) must have finished: its model saved and, for a run directory, its manifest's status ``completed``;
anything else is a ConfigError when the augmentation is built. Its model loads once per process, when the first
chunk with augmented rows comes (a cached augmented split never loads it), and predicts in the process that augments,
alone (no collective operation, which would wait on processes that are not augmenting). The augmentation's
``fingerprint`` is a digest of the model folder's files, so a retrained filter run makes the core augment again
rather than serve rows filtered by the old model (hashing the folder once per process: about a second for a
base-size model).

The rows must be ones the run can read. The training task's label set is not known to an augmentation, so the
filter checks what it can see, every chunk's rows (the original ones too) against the run's task: a row with a
label or an entity type the run was not trained on, texts of another shape (tags per word against a model of whole
texts) or pairs where the run read single texts (or the reverse) is a ConfigError naming it. A run that knows more
labels than the training rows use is accepted: a row it gives one of those is dropped like any other disagreement.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine import LINE, ConfigError, DataError, EngineError, Register, console
from engine.errors import ConfigIssue
from engine_builtins.augmentations.paths import from_task_folder

Rows = list[dict[str, Any]]
AUGMENTED = "_augmented"  # set by the core on rows an earlier augmentation produced
NAME = "label_filter"
SOURCE = "augmented training rows"
STANDARD = ("text", "text_pair", "label")


class FilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str = Field(..., min_length=1, description="A finished run directory (or its model/ folder) whose model "
                     "predicts the augmented rows; relative to the task file's folder.")
    batch_size: int = Field(64, ge=1, description="Rows per forward pass of the run's model.")
    min_agreement: float = Field(1.0, gt=0, le=1, description="Tagging: the share of a row's tags the prediction "
                                 "must match for the row to be kept (1: every tag).")
    tolerance: float | None = Field(None, ge=0, description="Regression: the largest difference between a predicted "
                                    "and the row's value (each target) for the row to be kept; required for a "
                                    "regression run.")

    @field_validator("run")
    @classmethod
    def _from_task_folder(cls, value: str, info: ValidationInfo) -> str:
        return from_task_folder(value, info) or value


def issue(message: str, option: str = "run") -> ConfigError:
    return ConfigError([ConfigIssue(f"{NAME}.{option}", message)])


def finished_model(run: str) -> Path:
    """The model folder of a finished run (``run``: the run directory or its model/ folder); a ConfigError when
    there is none or the run has not finished."""
    from engine.errors import RunDirError
    from engine.inference.loading import model_dir_of
    from engine.rundir.reading import read_json

    path = Path(run).expanduser()
    if not path.exists():
        raise issue(f"{path}: no such run directory (give a finished run directory, or its model/ folder)")
    try:
        model_dir = model_dir_of(path)
    except RunDirError as exc:
        raise issue(str(exc)) from None
    manifest = read_json(model_dir.parent / "manifest.json")
    if isinstance(manifest, dict) and "status" in manifest and manifest["status"] != "completed":
        raise issue(f"{model_dir.parent}: the run has not finished (its manifest.json says status "
                    f"{manifest['status']!r}); the filter needs a run's final model")
    return model_dir


def model_digest(model_dir: Path) -> str:
    """A digest of every file of the model folder (``engine.digests``: their sha256, or their sizes and modification
    times under ``ENGINE_CACHE_TRUST_MTIME``), not of where it lies."""
    from engine import digests

    described = {k: v for k, v in digests.describe(model_dir).items() if k != "path"}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class OneProcess:
    """What the engine's inference loop asks of an Accelerator, for this process alone: the filter predicts in the
    process that augments, while the others of a distributed launch wait for it (or augment a stream themselves),
    so a gather or reduce across processes would never be answered."""

    num_processes, process_index, is_main_process, is_local_main_process = 1, 0, True, True

    def __init__(self, device: Any) -> None:
        self.device = device

    @staticmethod
    def reduce(tensor: Any, reduction: str = "sum") -> Any:
        return tensor


def agreement(task: Any, options: FilterOptions, run: str) -> Callable[[Any, Any], bool]:
    """Whether a prediction of the run's task agrees with a row's reference (``task.references``)."""
    if getattr(task, "labels_per_word", False) or getattr(task, "tag_names", None) is not None:
        def same_tags(prediction: Any, reference: Any) -> bool:
            tags = prediction.get("tags") if isinstance(prediction, dict) else prediction
            if not isinstance(tags, list) or len(tags) != len(reference) or not reference:
                return False
            return sum(a == b for a, b in zip(tags, reference)) >= options.min_agreement * len(reference)

        return same_tags
    if getattr(task, "targets", None) is not None:
        if options.tolerance is None:
            raise issue(f"the run {run} predicts numbers ({', '.join(task.targets)}): set tolerance, the largest "
                        "difference between a predicted and a row's value for the row to be kept", "tolerance")
        tolerance = options.tolerance

        def close(prediction: Any, reference: Any) -> bool:
            values = prediction if isinstance(prediction, list) else [prediction]
            targets = reference if isinstance(reference, list) else [reference]
            return len(values) == len(targets) and all(abs(float(a) - float(b)) <= tolerance
                                                       for a, b in zip(values, targets))

        return close

    def same_label(prediction: Any, reference: Any) -> bool:
        if not isinstance(prediction, dict) or "label" not in prediction:
            raise issue(f"the run {run} ({type(task).__name__}) predicts {str(prediction)[:80]!r}: the filter "
                        "compares a predicted 'label', tags, or values with the rows' labels, and cannot compare "
                        "these")
        label = prediction["label"]
        if isinstance(label, list) or isinstance(reference, list):
            return sorted(map(str, _as_list(label))) == sorted(map(str, _as_list(reference)))
        return str(label) == str(reference)

    return same_label


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def standard(row: dict[str, Any], index: int) -> dict[str, Any]:
    """The row as the run's task reads it: its text(s), label and line (the file's, where known)."""
    found = {key: row[key] for key in STANDARD if key in row}
    line = row.get(LINE)
    return {**found, LINE: line if isinstance(line, int) else index + 1}


def label_filter(options: FilterOptions) -> Callable[[Rows, random.Random], Rows]:
    """Drop augmented rows whose label a finished run predicts differently."""
    model_dir = finished_model(options.run)
    every = float(os.environ.get(console.PROGRESS_SECONDS, "30"))
    state: dict[str, Any] = {"printed": None}  # the run's Predictor and agreement test, loaded on first use
    totals = {"augmented": 0, "kept": 0}

    def loaded() -> tuple[Any, Callable[[Any, Any], bool]]:
        if "predictor" not in state:
            import engine

            try:
                predictor = engine.load(model_dir, batch_size=options.batch_size)
            except EngineError as exc:
                raise issue(f"{model_dir} cannot be loaded: {exc}") from None
            state["predictor"] = predictor
            state["same"] = agreement(predictor.task, options, options.run)
        return state["predictor"], state["same"]

    def apply(rows: Rows, rng: random.Random) -> Rows:
        marked = [i for i, row in enumerate(rows) if AUGMENTED in row]
        if not marked:
            return list(rows)
        predictor, same = loaded()
        check_rows(predictor, rows, options.run)
        predictions, references = predict(predictor, [standard(rows[i], i) for i in marked], options.batch_size)
        dropped = {i for i, p, r in zip(marked, predictions, references) if not same(p, r)}
        totals["augmented"] += len(marked)
        totals["kept"] += len(marked) - len(dropped)
        report(len(marked), len(marked) - len(dropped))
        return [row for i, row in enumerate(rows) if i not in dropped]

    def report(augmented: int, kept: int) -> None:
        now = time.monotonic()
        first = state["printed"] is None
        if not first and now - state["printed"] < every:
            return
        state["printed"] = now
        line = (f"{NAME}: kept {totals['kept']:,} of {totals['augmented']:,} augmented rows "
                f"({totals['kept'] / totals['augmented']:.1%})")
        if totals["augmented"] != augmented:
            line += f" so far (the last chunk: {kept:,} of {augmented:,})"
        console.info(line + (f", as {model_dir} predicts them" if first else ""))

    apply.fingerprint = model_digest(model_dir)  # type: ignore[attr-defined]
    apply.totals = totals  # type: ignore[attr-defined]
    return apply


def check_rows(predictor: Any, rows: Rows, run: str) -> None:
    """The rows are ones the run's task reads (their shape, their labels or entity types), else a ConfigError."""
    from engine import Split
    from engine.inference.inputs import Columns

    task = predictor.task
    words = any(isinstance(row.get("text"), (list, tuple)) for row in rows)
    if words and not getattr(task, "labels_per_word", False):
        raise issue(f"the run {run} labels whole texts ({type(task).__name__}), and these rows have one tag per "
                    "word: give a run of the training task")
    pairs = Columns.of(predictor.loaded).pairs  # whether the run read pairs of texts (None: not known)
    if pairs is not None and pairs != any("text_pair" in row for row in rows):
        given = "pairs of texts" if not pairs else "one text each"
        raise issue(f"the run {run} read {'pairs of texts' if pairs else 'one text at a time'}, and these rows have "
                    f"{given}: give a run of the training task")
    try:
        with predictor.printing():  # the task's warnings about the rows were given when the split was read
            task.check(Split("check", [standard(row, i) for i, row in enumerate(rows)], SOURCE))
    except DataError as exc:
        raise issue(f"the run {run} does not know the training rows' labels: {exc}. Give a run trained on the "
                    "same labels") from None


def predict(predictor: Any, rows: Rows, batch_size: int) -> tuple[list[Any], list[Any]]:
    """The run's predictions for ``rows`` (its task's own, before formatting) and the rows' references, as the
    task compares them (``Task.references``: tags read as BIO, labels as names, values as floats)."""
    from engine import Split
    from engine.data.features import predictions_of
    from engine.inference.loop import Placed, run_inference

    split = Split("augmented", rows, SOURCE)
    placed = Placed(OneProcess(predictor.placed.accelerator.device), predictor.placed.model)
    with predictor.printing():
        result = run_inference(predictor.loaded, split, batch_size, labelled=False, description=NAME, placed=placed)
        predictions = predictions_of(predictor.task, split, result.features, result.outputs)
    return predictions, predictor.task.references(split)


def declare(register: Register) -> None:
    register(NAME, label_filter, options=FilterOptions, shapes=["single", "pair", "tokens"],
             description="Drop augmented rows whose label a finished run predicts differently (place after the "
                         "augmentations to filter).")
