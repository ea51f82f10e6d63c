"""What a run saves in its directory: task.json, manifest.json, predictions/, adapter/, model/, metrics.json and the
report. Only the main process writes; on the others every method does nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine import console
from engine.atomic import replace_dir, write_json
from engine.callbacks import TrainerState
from engine.config.choice import ResolvedTask
from engine.data.split import Split
from engine.head import HeadSpec
from engine.inference.scores import Scores, write_predictions
from engine.model.adapters import ADAPTER_DIR, Adapter, adapter_meta, write_adapter_dir
from engine.model.card import write_model_card
from engine.model.encoder import EngineModel
from engine.model.saved import save_model
from engine.plugins.manager import PluginManager
from engine.rundir.manifest import manifest


class RunWriter:
    """Writes the run directory's files; knows what they record of the run (its task file, plugins, data, model)."""

    def __init__(self, resolved: ResolvedTask, manager: PluginManager, *, main: bool, tokenizer: Any,
                 max_length: int, head_spec: HeadSpec, adapter: Adapter | None, splits: dict[str, Split],
                 parameters: dict[str, int]) -> None:
        self.resolved, self.manager, self.main = resolved, manager, main
        self.run_dir = resolved.output_dir
        self.task = resolved.task_object
        self.tokenizer, self.max_length, self.head_spec, self.adapter = tokenizer, max_length, head_spec, adapter
        self.data_files = {name: Path(split.source) for name, split in splits.items()}
        self.parameters = parameters  # trainable: at any epoch of the freezing schedule
        train = splits.get("train")
        self.augmentation = [s.to_dict() for s in train.augmentation] if train is not None else []

    def task_file(self) -> None:
        """RUN_DIR/task.json: the task file as run, every default filled in."""
        if self.main:
            write_json(self.run_dir / "task.json", self.resolved.to_dict())

    def manifest(self, status: str, extra: dict[str, Any] | None = None) -> None:
        if self.main:
            plugins = [vars(info) for info in self.manager.infos.values()]
            extra = {"parameters": self.parameters,
                     **({"adapter": self.adapter.describe()} if self.adapter is not None else {}), **(extra or {})}
            write_json(self.run_dir / "manifest.json", manifest(seed=self.resolved.training.seed,
                                                                data_files=self.data_files, plugins=plugins,
                                                                status=status, augmentation=self.augmentation,
                                                                extra=extra))
            if status == "completed":
                self.model_card()

    def model_card(self) -> None:
        """model/README.md, in the Hugging Face Hub's format (after metrics.json and manifest.json, which it
        quotes). A card that cannot be written costs the run nothing; it says why."""
        try:
            write_model_card(self.run_dir / "model", level=self.head_spec.level)
        except Exception as exc:
            console.warn(f"the model card (model/README.md) could not be written ({type(exc).__name__}: {exc}); "
                         "the run itself is complete")

    def predictions(self, name: str, split: Split, scores: Scores) -> None:
        """RUN_DIR/predictions/NAME.jsonl, which the report reads."""
        if self.main:
            write_predictions(self.run_dir / "predictions" / f"{name}.jsonl", split, scores)

    def model(self, model: EngineModel) -> bool:
        """RUN_DIR/model/, and with an adapter RUN_DIR/adapter/ first (the adapter is then merged into ``model``'s
        encoder for model/). Returns whether plain transformers can load model/ (False on the other processes)."""
        if not self.main:
            return False
        resolved, tmp = self.resolved, self.run_dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        infos = self.manager.infos
        extra = {"max_length": self.max_length,
                 "plugins": {c.component.plugin: infos[c.component.plugin].version
                             for c in (resolved.task, resolved.head, resolved.data) if c.component.plugin in infos},
                 "data": {"format": resolved.data.name, "options": resolved.data.filled}}
        if self.adapter is not None:
            extra["merged_adapter"] = self.adapter_dir(model, self.adapter, extra)
        hf_loadable = save_model(
            tmp, model, self.tokenizer, task_config=resolved.task.filled, head_config=resolved.head.filled,
            task_state=self.task.state_dict(), hf_config=self.task.hf_config(),
            num_outputs=self.head_spec.num_outputs, extra=extra,
        )
        replace_dir(tmp, self.run_dir / "model")
        return hf_loadable

    def adapter_dir(self, model: EngineModel, adapter: Adapter, extra: dict[str, Any]) -> dict[str, Any]:
        """RUN_DIR/adapter/, then the adapter merged into ``model``'s encoder; returns what describes it."""
        resolved, tmp = self.resolved, self.run_dir / f"{ADAPTER_DIR}.tmp"
        described = adapter_meta(resolved.model.name, resolved.model.revision, adapter)
        shutil.rmtree(tmp, ignore_errors=True)
        write_adapter_dir(tmp, adapter, model.head, self.tokenizer,
                          {"task": resolved.task.filled, "task_state": self.task.state_dict(),
                           "head": resolved.head.filled,
                           "transformers_loadable": False, **extra, "adapter": described})
        replace_dir(tmp, self.run_dir / ADAPTER_DIR)
        model.backbone = adapter.merge()
        return described

    def metrics(self, results: dict[str, dict[str, float]]) -> None:
        if self.main:
            write_json(self.run_dir / "metrics.json", results)

    def report(self) -> Path | None:
        """RUN_DIR/report/: a report that fails to draw costs the run nothing (the model is saved); it says why."""
        from engine.report.run_report import write_report

        if not self.main:
            return None
        try:
            return write_report(self.run_dir, self.task)
        except Exception as exc:
            console.warn(f"the run report could not be written ({type(exc).__name__}: {exc}); the run itself is "
                         f"complete. Try again with: engine report {self.run_dir} --debug")
            return None


def completed(state: TrainerState, processes: int, hf_loadable: bool) -> dict[str, Any]:
    """What the manifest of a completed run adds: the best model, the steps, the training time."""
    seconds = state.train_seconds
    return {
        "best": {"monitor": state.monitor, "value": state.best_metric, "epoch": state.best_epoch,
                 "step": state.best_step},
        "steps": state.global_step, "processes": processes, "transformers_loadable": hf_loadable,
        "training_time": {"seconds": round(seconds, 3), "samples": state.samples,
                          "samples_per_second": round(state.samples / seconds, 2) if seconds else None},
    }
