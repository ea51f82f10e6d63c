"""``engine.api.export``: one task of a multi-task run written as a one-task model folder (`engine export`), which
``engine.load``, `engine predict` and `engine serve` take as they take a one-task run's model/, and plain
transformers loads whole where the task's head is one it knows (docs/multitask.md)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine import console
from engine.api.plugins import plugin_manager
from engine.errors import EngineError
from engine.inference.loading import load_model, model_dir_of, task_refusal
from engine.model.card import CARD_FILE
from engine.model.export import save_task_model, task_card
from engine.model.saved import ENGINE_FILE, read_engine_file, unwrap
from engine.rundir.reading import read_json


@dataclass(frozen=True)
class Exported:
    """An exported task: its folder, its head, and the transformers auto class that loads the folder whole (None:
    transformers does not know the head, and loads the encoder alone with ``AutoModel``)."""

    model_dir: Path
    task: str
    head: str
    transformers_class: str | None


def export(run_dir: str | os.PathLike[str], task: str | None, output_dir: str | os.PathLike[str], *,
           overwrite: bool = False, trust_plugins: bool = False, plugins: str | Iterable[str] | None = None,
           block_plugins: str | Iterable[str] = ()) -> Exported:
    """Write task ``task`` of the multi-task model in ``run_dir`` (a run directory or its model/) to ``output_dir``
    as a one-task model: what a one-task run's model/ holds (engine.json, the encoder, the tokenizer, the head, a
    model card). ``overwrite``: replace an earlier export there (as ``--overwrite``); ``trust_plugins``,
    ``plugins``, ``block_plugins``: as for ``engine.load``. Checks everything it can before loading anything, and
    raises an ``engine.EngineError`` with the message `engine export` prints."""
    source, target = Path(run_dir), Path(output_dir)
    model_dir = model_dir_of(source)
    meta = read_engine_file(model_dir)
    tasks = list(meta.get("tasks") or [])
    if not tasks:
        raise EngineError(f"{model_dir}: a one-task model; this folder already is the model (engine predict and "
                          "engine.load take it, and plain transformers too where its head is one it knows); engine "
                          "export takes one task out of a multi-task run")
    if meta.get("adapter"):
        raise EngineError(f"{model_dir}: an adapter folder; export from the run directory, whose model/ holds the "
                          "adapter merged into the encoder")
    if task not in tasks:
        raise EngineError(task_refusal(model_dir, task, tasks))
    check_target(target, model_dir, overwrite)

    manager = plugin_manager(only=plugins, block=block_plugins)
    loaded = load_model(source, manager, trust_plugins=trust_plugins, task=task)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise EngineError(f"OUTPUT_DIR {target}: cannot write there ({exc.strerror or exc}); choose another "
                          "folder") from None
    try:
        written = work / "model"
        auto = save_task_model(written, loaded.model, loaded.tokenizer, loaded.task, loaded.meta)
        level = loaded.task.head_spec(unwrap(loaded.model.backbone).config.hidden_size).level
        write_card(written, str(task), model_dir.parent, level, target)
        if target.exists():  # empty, or an earlier export --overwrite replaces: it goes once the new one is whole
            os.replace(target, work / "old")
        os.replace(written, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Exported(target, str(task), str(loaded.meta["head"].get("name")), auto)


def check_target(target: Path, model_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output folder that holds anything but an earlier export (and that only with
    ``overwrite``), or that is, holds or lies inside the model being exported."""
    if target.resolve().is_relative_to(model_dir.resolve()) or model_dir.resolve().is_relative_to(target.resolve()):
        raise EngineError(f"OUTPUT_DIR {target} overlaps the model it exports ({model_dir}); choose a folder "
                          "outside it")
    if target.exists() and not target.is_dir():
        raise EngineError(f"OUTPUT_DIR {target} is a file; choose a folder")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise EngineError(f"OUTPUT_DIR {target} already holds files; pass --overwrite to replace an earlier "
                              "export there, or choose another folder")
        if not (target / ENGINE_FILE).is_file():
            raise EngineError(f"--overwrite: {target} does not look like an exported model (no {ENGINE_FILE}); not "
                              "deleting it")


def write_card(directory: Path, task: str, run_dir: Path, level: str, target: Path) -> None:
    """``directory``/README.md from the run's records; a card that cannot be written costs the export nothing."""
    records = {name: read_json(run_dir / name) for name in ("metrics.json", "manifest.json", "task.json")}
    mapped = {name: value if isinstance(value, dict) else {} for name, value in records.items()}
    try:
        text = task_card(read_engine_file(directory), task, level=level, metrics=mapped["metrics.json"],
                         manifest=mapped["manifest.json"], task_config=mapped["task.json"],
                         title=f"{run_dir.name}: {task}", model_path=str(target))
    except Exception as exc:
        console.warn(f"the model card ({CARD_FILE}) could not be written ({type(exc).__name__}: {exc}); the model "
                     "itself is complete")
        return
    (directory / CARD_FILE).write_text(text, encoding="utf-8")
