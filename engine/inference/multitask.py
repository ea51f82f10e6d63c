"""Every task of a multi-task model on the same inputs, in one encoder pass per batch: each task encodes the inputs
its own way, and where every task's features hold the same model inputs (the same tokens, in the same features),
the encoder runs once per batch and each task's head reads its output. Tasks that encode the inputs differently (a
tagging task that windows a long text, a pair task given one text) are refused with the reason."""

from __future__ import annotations

from typing import Any

import torch

from engine.data.features import encode_split, feature_key, lengths, predictions_of, take
from engine.data.split import Split
from engine.errors import EngineError
from engine.inference.loading import LoadedModel
from engine.inference.loop import sorted_batches


def task_features(loaded: LoadedModel, split: Split) -> Any:
    """``split`` encoded by the loaded task, as ``run_inference`` encodes it (unlabelled)."""
    return encode_split(loaded.task, split, loaded.tokenizer, loaded.meta["max_length"], labelled=False,
                        key=feature_key(loaded.meta["task"], loaded.meta.get("plugins", {}).get(loaded.task_plugin)))


def incompatibility(features: dict[str, Any], inputs: list[str]) -> str | None:
    """Why the tasks' features cannot share one encoder pass, or None when they can: the same number of features,
    each from the same row with the same model inputs."""
    names = list(features)
    first = features[names[0]].data
    columns = [c for c in ["row", *inputs] if c in first.column_names]
    for name in names[1:]:
        other = features[name].data
        if other.num_rows != first.num_rows:
            return (f"tasks {names[0]!r} and {name!r} make {first.num_rows} and {other.num_rows} features of these "
                    "inputs (a long text cut into windows, or texts read as pairs)")
        for column in columns:
            if column not in other.column_names or other.column(column).to_pylist() != first.column(column).to_pylist():
                return f"tasks {names[0]!r} and {name!r} encode these inputs differently ({column!r} differs)"
    return None


def predict_tasks(tasks: dict[str, LoadedModel], splits: dict[str, Split], models: dict[str, torch.nn.Module],
                  device: Any, batch_size: int = 64) -> list[dict[str, Any]]:
    """One record per input row: ``{NAME: the record predict gives for that task}``, every task from one encoder
    pass per batch. ``splits``: the inputs as each task reads them; ``models``: each task's placed model (one
    encoder object). One process: the rows are not shared out under a distributed launch."""
    names = list(tasks)
    first = tasks[names[0]]
    features = {name: task_features(loaded, splits[name]) for name, loaded in tasks.items()}
    why = incompatibility(features, list(first.tokenizer.model_input_names))
    if why is not None:
        raise EngineError(f"cannot predict every task in one pass: {why}; predict one task at a time (task=NAME, "
                          "--task NAME)")
    outputs: dict[str, list[Any]] = {name: [None] * len(f) for name, f in features.items()}
    views: dict[str, Any] = {name: getattr(model, "module", model) for name, model in models.items()}
    encoder = views[names[0]]
    input_names = getattr(encoder, "input_names", list(first.tokenizer.model_input_names))
    for view in views.values():
        view.eval()
    with torch.inference_mode():
        for indices in sorted_batches(lengths(features[names[0]]), batch_size):
            batches = {name: {k: v.to(device) for k, v in
                              loaded.task.collate(take(features[name], indices), loaded.tokenizer).items()}
                       for name, loaded in tasks.items()}
            some = next(iter(batches.values()))
            encoded = encoder.backbone(**{k: some[k] for k in input_names if k in some}, return_dict=True)
            for name, loaded in tasks.items():
                out = views[name].head(encoded, batches[name])
                for i, value in zip(indices, loaded.task.outputs(batches[name], out)):
                    outputs[name][i] = value
    records: list[dict[str, Any]] = [{} for _ in range(len(next(iter(splits.values()))))]
    for name, loaded in tasks.items():
        predictions = predictions_of(loaded.task, splits[name], features[name], outputs[name])
        for record, row, prediction in zip(records, splits[name].rows, predictions):
            record[name] = loaded.task.format_prediction(row, prediction)
    return records
