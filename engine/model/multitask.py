"""Several tasks on one encoder: ``MultiTaskModel`` holds the encoder once and one head per task; a batch names its
task (``batch["task"]``) and goes through the encoder and that task's head. ``view(name)`` is the ``EngineModel``
of one task, sharing the encoder and head objects, for the code that knows one task (evaluation, prediction)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.head import HeadOutput
from engine.model.encoder import EngineModel
from engine.model.saved import ENGINE_FILE, HEAD_WEIGHTS, unwrap


class MultiTaskModel(EngineModel):
    """An encoder and a head per task (``head``, a ModuleDict in the task file's order: what an optimizer's
    parameter groups and a freezing strategy see as the head); ``weights``: each task's loss weight, applied to the
    loss of its batches in training."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module], input_names: list[str],
                 weights: dict[str, float] | None = None) -> None:
        super().__init__(backbone, nn.ModuleDict(heads), input_names)
        self.weights = dict(weights or {})
        # Not submodules: the encoder and heads are registered once, above; a view only routes.
        self._views = {name: EngineModel(backbone, head, input_names) for name, head in heads.items()}

    @property
    def tasks(self) -> list[str]:
        return list(self._views)

    def replace_backbone(self, backbone: nn.Module) -> None:
        """The encoder replaced, for every task (an adapter merged into it)."""
        self.backbone = backbone
        for view in self._views.values():
            view.backbone = backbone

    def view(self, name: str) -> EngineModel:
        """Task ``name``'s model: this encoder and that head (the same objects)."""
        view = self._views[name]
        view.training = self.training
        return view

    def forward(self, **batch: torch.Tensor | str) -> HeadOutput:
        name = str(batch.pop("task"))
        out = self._views[name](**batch)
        weight = self.weights.get(name, 1.0)
        if weight != 1.0 and out.loss is not None:
            out = dataclasses.replace(out, loss=out.loss * weight)
        return out


#: Where each task's head lives in a multi-task model/ folder: heads/NAME/ (head.safetensors, engine.json).
HEADS_DIR = "heads"


def save_tasks_model(directory: Path, model: MultiTaskModel, tokenizer: Any, tasks: dict[str, dict[str, Any]],
                     extra: dict[str, Any]) -> None:
    """Write ``directory`` (which must not exist yet): the encoder once, in ``save_pretrained``'s layout with the
    tokenizer (plain transformers loads it as an encoder: ``AutoModel``), and each task's head in heads/NAME/ with
    its engine.json (``tasks[NAME]``: the task, its state, the head's section); engine.json at the top lists the
    tasks."""
    from safetensors.torch import save_file

    backbone = unwrap(model.backbone)
    config = backbone.config
    config.architectures = [type(backbone).__name__]
    directory.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()},
              str(directory / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(directory)
    write_task_heads(directory, model, tokenizer, tasks, extra)


def write_task_heads(directory: Path, model: MultiTaskModel, tokenizer: Any, tasks: dict[str, dict[str, Any]],
                     extra: dict[str, Any]) -> None:
    """What a multi-task folder holds besides its encoder (model/) or its adapter (adapter/): the tokenizer, each
    task's head in heads/NAME/ with its engine.json, and engine.json at the top, which lists the tasks."""
    from safetensors.torch import save_file

    tokenizer.save_pretrained(directory)
    for name, meta in tasks.items():
        folder = directory / HEADS_DIR / name
        folder.mkdir(parents=True)
        head = unwrap(model.view(name).head)
        save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(folder / HEAD_WEIGHTS))
        (folder / ENGINE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    top = {"tasks": {name: f"{HEADS_DIR}/{name}" for name in tasks}, "transformers_loadable": False, **extra}
    (directory / ENGINE_FILE).write_text(json.dumps(top, indent=2) + "\n", encoding="utf-8")
