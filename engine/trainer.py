"""The run: data, model, the Accelerate loop, evaluation, saving. Reads top to bottom."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from engine import console
from engine.callbacks import CallbackList, TrainerState
from engine.config import ResolvedTask
from engine.data import Split
from engine.errors import ConfigError, ConfigIssue, EngineError
from engine.model import EngineModel, default_max_length, load_pretrained, save_model
from engine.plugins import PluginManager
from engine.run import check_run_dir, manifest, prepare_run_dir, replace_dir, write_json

LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae", "error")


# --- batching ----------------------------------------------------------------------------------------------------


class LengthGroupedBatches(Sampler[list[int]]):
    """Shuffled batches of similar-length features: far less padding than random batches, still random order.

    Features are shuffled, cut into chunks of ``batch_size * 50``, each chunk sorted by length and split into
    batches, and the batches shuffled. Seeded by ``seed`` and the epoch, so runs reproduce.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: bool = True) -> None:
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if not self.group:
            yield from (order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        chunk = self.batch_size * 50
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lambda i: self.lengths[i], reverse=True)
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        # A short batch goes last: Accelerate's per-process sharding expects only the final batch to be short.
        full = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(full)
        yield from full + [b for b in batches if len(b) != self.batch_size]


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches, longest first: least padding, and the first batch shows the worst-case memory."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate_with_index(features: list[dict[str, Any]], task: Any, tokenizer: Any) -> dict[str, torch.Tensor]:
    batch = task.collate(features, tokenizer)
    batch["feature_index"] = torch.tensor([f["_index"] for f in features], dtype=torch.long)
    return batch


def index_features(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, feature in enumerate(features):
        feature["_index"] = i
    return features


# --- inference, shared by evaluation, `engine evaluate` and `engine predict` ------------------------------------


def infer(model: torch.nn.Module, features: list[dict[str, Any]], task: Any, tokenizer: Any, batch_size: int,
          accelerator: Any, description: str) -> tuple[list[Any], float | None]:
    """Outputs for every feature, in feature order, gathered from all processes; and the mean loss if labelled."""
    loader = DataLoader(
        features, batch_sampler=sorted_batches([f["length"] for f in features], batch_size),
        collate_fn=partial(collate_with_index, task=task, tokenizer=tokenizer),
    )
    loader = accelerator.prepare_data_loader(loader)
    outputs: list[Any] = [None] * len(features)
    loss_sum, loss_count, done = 0.0, 0, 0
    model.eval()
    with torch.no_grad(), console.progress(transient=True) as bar:
        job = bar.add_task(description, total=len(features), unit="rows", postfix="")
        for batch in loader:
            indices = batch.pop("feature_index").tolist()
            out = model(**batch)
            values = task.outputs(batch, out)
            # Batches differ in size across processes, so gather (index, output) pairs as objects; keyed by
            # index, the rows a process repeats to even out the batches land on themselves: none dropped, none twice.
            for i, value in accelerator.gather_for_metrics(list(zip(indices, values)), use_gather_object=True):
                if outputs[i] is None:
                    done += 1
                outputs[i] = value
            if out.loss is not None:
                loss_sum += float(out.loss) * len(indices)
                loss_count += len(indices)
            bar.update(job, completed=done)
    # Each process averaged its own batches; pool them (the few rows padded in to even out batches count twice).
    totals = accelerator.reduce(torch.tensor([loss_sum, loss_count], dtype=torch.float64), reduction="sum").tolist()
    return outputs, (totals[0] / totals[1] if totals[1] else None)


def compute_metrics(task: Any, metrics: list[Any], split: Split, features: list[dict[str, Any]],
                    outputs: list[Any], loss: float | None) -> dict[str, float]:
    predictions = task.predictions(split, features, outputs)
    references = task.references(split)
    values: dict[str, float] = {}
    if loss is not None:
        values["loss"] = loss
    for metric in metrics:
        values.update(metric(predictions, references))
    return values


# --- the run -----------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, float]]
    hf_loadable: bool


def load_splits(resolved: ResolvedTask) -> dict[str, Split]:
    splits = resolved.data.build(resolved.base_dir)
    if "train" not in splits:
        raise ConfigError([ConfigIssue("data.train", "missing: a training file is needed to train")], resolved.source)
    for split in splits.values():
        if not split.rows:
            raise EngineError(f"{split.source}: the {split.name} split is empty")
    return splits


def encode_all(task: Any, splits: dict[str, Split], tokenizer: Any, max_length: int) -> dict[str, list[dict[str, Any]]]:
    return {name: index_features(task.encode(split, tokenizer, max_length)) for name, split in splits.items()}


def run(resolved: ResolvedTask, manager: PluginManager, *, overwrite: bool = False, resume: bool = False) -> RunResult:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    training = resolved.training
    accelerator = Accelerator(
        gradient_accumulation_steps=training.gradient_accumulation_steps, mixed_precision=training.mixed_precision,
    )
    main = accelerator.is_main_process
    console.set_quiet(not main)
    if training.threads:
        torch.set_num_threads(training.threads)
    run_dir = resolved.output_dir
    check_run_dir(run_dir, overwrite=overwrite, resume=resume)
    set_seed(training.seed)

    # Data: read, learn the label space from train, check the other splits against it, augment train.
    task = resolved.task_object
    splits = load_splits(resolved)
    task.fit(splits["train"])
    for name, split in splits.items():
        if name != "train":
            task.check(split)
    rng = random.Random(training.seed)
    for augmentation in resolved.augment:
        train = splits["train"]
        splits["train"] = Split(train.name, augmentation.build()(list(train.rows), rng), train.source, train.info)

    # Model: the pretrained encoder, the task's features, the head it asks for.
    console.info(f"Loading [bold]{resolved.model.name}[/]")
    tokenizer, backbone = load_pretrained(resolved.model.name, resolved.model.revision)
    max_length = default_max_length(tokenizer, backbone, resolved.model.max_length)
    features = encode_all(task, splits, tokenizer, max_length)
    set_seed(training.seed)
    head = resolved.head.build(task.head_spec(backbone.config.hidden_size))
    model = EngineModel(backbone, head, list(tokenizer.model_input_names))
    freezer = resolved.freeze.build()
    metrics = [choice.build(task) for choice in resolved.metrics]
    callbacks = CallbackList([choice.build() for choice in resolved.callbacks])

    monitor = training.monitor or task.monitor
    if monitor.split(".")[0] not in splits:
        if training.monitor:
            raise ConfigError([ConfigIssue("training.monitor", f"monitors {monitor!r} but data has no {monitor.split('.')[0]!r} split")], resolved.source)
        monitor = None
    mode = training.mode if training.mode != "auto" else (
        task.monitor_mode if monitor == task.monitor else ("min" if any(k in (monitor or "") for k in LOWER_IS_BETTER) else "max")
    )

    sampler = LengthGroupedBatches([f["length"] for f in features["train"]], training.batch_size, training.seed,
                                   training.group_by_length)
    train_loader = DataLoader(features["train"], batch_sampler=sampler,
                              collate_fn=partial(collate_with_index, task=task, tokenizer=tokenizer))
    steps_per_epoch = math.ceil(len(sampler) / training.gradient_accumulation_steps)
    optimizer = resolved.optimizer.build(model)
    scheduler = resolved.scheduler.build(optimizer, steps_per_epoch * training.epochs)
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if main:
        prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
    accelerator.wait_for_everyone()

    state = TrainerState(run_dir=run_dir, epochs=training.epochs, steps_per_epoch=steps_per_epoch,
                         is_main_process=main, monitor=monitor, mode=mode)
    checkpoints = run_dir / "checkpoints"
    if resume:
        accelerator.load_state(str(checkpoints / "last"))
        saved = json.loads((checkpoints / "last" / "trainer_state.json").read_text())
        for key in ("epoch", "global_step", "best_metric", "best_step", "best_epoch", "best_metrics"):
            setattr(state, key, saved["state"][key])
        callbacks.load_state_dict(saved["callbacks"])
        console.info(f"Resuming {run_dir} at epoch {state.epoch + 1}")
    elif main:
        write_json(run_dir / "task.json", resolved.to_dict())
    plugin_list = [vars(info) for info in manager.infos.values()]
    data_files = {name: Path(split.source) for name, split in splits.items()}
    if main:
        write_json(run_dir / "manifest.json", manifest(seed=training.seed, data_files=data_files, plugins=plugin_list, status="running"))

    eval_batch = training.eval_batch_size or training.batch_size * 2
    unwrapped = accelerator.unwrap_model(model)

    def evaluate(split_name: str) -> dict[str, float]:
        outputs, loss = infer(model, features[split_name], task, tokenizer, eval_batch, accelerator, f"eval {split_name}")
        model.train()
        return compute_metrics(task, metrics, splits[split_name], features[split_name], outputs, loss)

    def evaluate_and_select() -> None:
        if "validation" not in splits:
            return
        values = {f"validation.{k}": v for k, v in evaluate("validation").items()}
        if monitor is not None and monitor not in values:
            raise EngineError(f"training.monitor: {monitor!r} is not among the computed metrics: {', '.join(values)}")
        if monitor is not None and state.improved(values[monitor]):
            state.best_metric, state.best_step, state.best_epoch = values[monitor], state.global_step, state.epoch + 1
            state.best_metrics = values
            if main:
                save_weights(unwrapped, checkpoints / "best.safetensors")
        callbacks.fire("on_evaluate", state, values)
        summary = ", ".join(f"{k.split('.', 1)[1]} {v:.4f}" for k, v in values.items())
        console.info(f"epoch {state.epoch + 1} step {state.global_step}: validation {summary}")

    callbacks.fire("on_train_begin", state)
    model.train()
    train_seconds, samples_trained = 0.0, 0  # optimisation only, evaluation excluded
    start_epoch = state.epoch
    samples_per_epoch = len(features["train"])
    with console.progress() as bar:
        job = bar.add_task("train", total=samples_per_epoch * (training.epochs - start_epoch), unit="samples", postfix="")
        for epoch in range(start_epoch, training.epochs):
            state.epoch = epoch
            sampler.set_epoch(epoch)
            freezer.apply(unwrapped, epoch)
            callbacks.fire("on_epoch_begin", state)
            running: list[float] = []
            tick = time.perf_counter()
            for batch in train_loader:
                batch.pop("feature_index")
                with accelerator.accumulate(model):
                    out = model(**batch)
                    accelerator.backward(out.loss)
                    if accelerator.sync_gradients and training.max_grad_norm:
                        accelerator.clip_grad_norm_(model.parameters(), training.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                running.append(out.loss.detach().float().item())
                samples_trained += len(batch["input_ids"]) * accelerator.num_processes
                bar.advance(job, len(batch["input_ids"]) * accelerator.num_processes)
                if accelerator.sync_gradients:
                    state.global_step += 1
                    loss = sum(running[-50:]) / len(running[-50:])
                    bar.update(job, postfix=f"loss {loss:.4f}  epoch {epoch + 1}/{training.epochs}")
                    callbacks.fire("on_step_end", state, {"loss": running[-1], "lr": scheduler.get_last_lr()[0]})
                    if training.eval_steps and state.global_step % training.eval_steps == 0:
                        train_seconds += time.perf_counter() - tick
                        evaluate_and_select()
                        tick = time.perf_counter()
                    if state.should_stop:
                        break
            train_seconds += time.perf_counter() - tick
            if not (training.eval_steps and state.global_step % training.eval_steps == 0):
                evaluate_and_select()
            callbacks.fire("on_epoch_end", state)
            state.epoch = epoch + 1
            save_checkpoint(accelerator, checkpoints / "last", state, callbacks)
            if state.should_stop:
                console.info(f"Stopping early after epoch {epoch + 1}")
                break
    callbacks.fire("on_train_end", state)

    # The best model (by the monitor) is the one evaluated on test and saved.
    accelerator.wait_for_everyone()
    if monitor is not None and (checkpoints / "best.safetensors").exists():
        load_weights(unwrapped, checkpoints / "best.safetensors")
    results: dict[str, dict[str, float]] = {}
    if "validation" in splits:
        results["validation"] = ({k.split(".", 1)[1]: v for k, v in state.best_metrics.items()} if state.best_metrics
                                 else evaluate("validation"))
    if "test" in splits:
        results["test"] = evaluate("test")
    hf_loadable = False
    if main:
        tmp = run_dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        hf_loadable = save_model(
            tmp, unwrapped, tokenizer, task_config=resolved.task.raw, head_config=resolved.head.raw,
            task_state=task.state_dict(), hf_config=task.hf_config(),
            extra={"max_length": max_length, "plugins": {c.component.plugin: manager.infos[c.component.plugin].version
                                                         for c in (resolved.task, resolved.head, resolved.data)
                                                         if c.component.plugin in manager.infos},
                   "data": {"format": resolved.data.name, "options": resolved.data.raw}},
        )
        replace_dir(tmp, run_dir / "model")
        write_json(run_dir / "metrics.json", results)
        write_json(run_dir / "manifest.json", manifest(
            seed=training.seed, data_files=data_files, plugins=plugin_list, status="completed",
            extra={"best": {"monitor": monitor, "value": state.best_metric, "epoch": state.best_epoch,
                            "step": state.best_step}, "steps": state.global_step, "transformers_loadable": hf_loadable,
                   "training_time": {"seconds": round(train_seconds, 3), "samples": samples_trained,
                                     "samples_per_second": round(samples_trained / train_seconds, 2) if train_seconds else None}},
        ))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return RunResult(run_dir, results, hf_loadable)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def save_checkpoint(accelerator: Any, path: Path, state: TrainerState, callbacks: CallbackList) -> None:
    """Accelerate state (model, optimizer, scheduler, RNGs) and ours, swapped in whole."""
    tmp = path.with_name(path.name + ".tmp")
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        write_json(tmp / "trainer_state.json", {"state": state.to_json(), "callbacks": callbacks.state_dict()})
        replace_dir(tmp, path)
    accelerator.wait_for_everyone()
