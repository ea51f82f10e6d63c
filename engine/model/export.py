"""One task of a multi-task model as a one-task model folder (`engine export`): the folder a one-task run's model/
is, written by ``save_model`` from the task's engine.json, with a model card cut to the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.multitask import of_task
from engine.model.card import model_card
from engine.model.encoder import EngineModel
from engine.model.saved import HF_AUTO_CLASSES, save_model, unwrap
from engine.task import Task

#: What a multi-task model's engine.json holds that a one-task model's does not take over: ``save_model`` writes the
#: task, its state, the head and ``transformers_loadable`` itself, and a loss weight means something only among tasks.
NOT_CARRIED = frozenset({"tasks", "task", "task_state", "head", "transformers_loadable", "weight"})


def save_task_model(directory: Path, model: EngineModel, tokenizer: Any, task: Task,
                    meta: dict[str, Any]) -> str | None:
    """Write ``directory`` (which must not exist yet) as a one-task run writes its model/. ``model``: a multi-task
    model's view of the task (the encoder and the task's head); ``task``: the task with its learned state; ``meta``:
    the task's engine.json over the shared one, as ``load_tasks`` reads them (max_length, plugins, data...).

    Returns the transformers auto class that loads the folder whole (``"AutoModelForSequenceClassification"``), or
    None when transformers does not know the head: the folder then loads with engine, and its encoder alone with
    ``AutoModel``."""
    spec = task.head_spec(unwrap(model.backbone).config.hidden_size)
    loadable = save_model(directory, model, tokenizer, task_config=meta["task"], head_config=meta["head"],
                          task_state=task.state_dict(), hf_config=task.hf_config(), num_outputs=spec.num_outputs,
                          extra={k: v for k, v in meta.items() if k not in NOT_CARRIED})
    if not loadable:
        return None
    head = unwrap(model.head)
    kind, _ = head.hf_export()
    return HF_AUTO_CLASSES[kind]


def task_card(meta: dict[str, Any], name: str, *, level: str, metrics: dict[str, Any], manifest: dict[str, Any],
              task_config: dict[str, Any], title: str, model_path: str) -> str:
    """The README.md of task ``name`` exported from a multi-task run: ``meta``, the exported engine.json; the run's
    metrics.json, manifest.json and task.json, of which the card shows the task's own metrics and data files
    (``NAME.METRIC``, ``NAME.SPLIT`` there)."""
    own_metrics = {split: of_task(values, name) for split, values in metrics.items() if isinstance(values, dict)}
    own_manifest = {**manifest, "data": of_task(manifest.get("data") or {}, name)}
    return model_card(meta, {split: values for split, values in own_metrics.items() if values}, own_manifest,
                      task_config=task_config, level=level, name=title, model_path=model_path)
