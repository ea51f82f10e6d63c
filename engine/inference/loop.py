"""The inference loop, shared by evaluation during training, `engine evaluate` and `engine predict`: features in
sorted batches, outputs gathered from every process in feature order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine import console
from engine.data.features import encode_split, feature_key, lengths, row_starts, take
from engine.data.node import first_on_node
from engine.data.split import Split
from engine.errors import EngineError
from engine.inference.loading import LoadedModel
from engine.model.quantize import quantize_int8


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches, longest first: least padding, and the first batch shows the worst-case memory."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def forward_batch(model: torch.nn.Module, task: Any, tokenizer: Any, features: list[dict[str, Any]],
                  device: Any) -> tuple[Any, list[Any]]:
    """One batch through the model (under the caller's ``torch.inference_mode``): the task's collate (padding,
    attention mask), the model on ``device``, and the task's outputs per feature; the model's output (loss, logits)
    first. The one step that ``infer`` and a server's batches share."""
    batch = task.collate(features, tokenizer)
    batch = {k: v.to(device) for k, v in batch.items()}
    out = model(**batch)
    return out, task.outputs(batch, out)


def infer(model: torch.nn.Module, features: Any, task: Any, tokenizer: Any, batch_size: int,
          accelerator: Any, description: str) -> tuple[list[Any], float | None]:
    """Outputs for every feature, in feature order, gathered from all processes; and the mean loss if labelled.

    Exact under any number of processes: global batches (longest first) are split between the processes as in
    training, with no feature repeated to even them out; a process whose share of the last batch is empty still
    takes part in the gather. The loss is pooled over what each batch's loss averages (``HeadOutput.loss_weight``).
    """
    from accelerate.utils import gather_object

    n, rank = accelerator.num_processes, accelerator.process_index
    batches = sorted_batches(lengths(features), batch_size * n)
    outputs: list[Any] = [None] * len(features)
    starts = row_starts(features)
    loss_sum, loss_count, done = 0.0, 0.0, 0
    model.eval()
    with torch.inference_mode(), console.progress(transient=True) as bar:
        job = bar.add_task(description, total=int(starts.sum()), unit="rows", postfix="")
        for indices in (b[rank::n] for b in batches):
            pairs: list[tuple[int, Any]] = []
            if indices:
                out, values = forward_batch(model, task, tokenizer, take(features, indices), accelerator.device)
                pairs = list(zip(indices, values))
                if out.loss is not None:
                    weight = float(out.loss_weight) if out.loss_weight is not None else len(indices)
                    loss_sum += float(out.loss) * weight
                    loss_count += weight
            for i, value in (gather_object(pairs) if n > 1 else pairs):
                outputs[i] = value
                done += int(starts[i])
            bar.update(job, completed=done)
    totals = accelerator.reduce(torch.tensor([loss_sum, loss_count], dtype=torch.float64), reduction="sum").tolist()
    return outputs, (totals[0] / totals[1] if totals[1] else None)


@dataclass
class Inference:
    """A model's outputs on one input split, with what produced them."""

    split: Split
    features: Any
    outputs: list[Any]
    loss: float | None
    is_main_process: bool


@dataclass
class Placed:
    """A loaded model on this process's device, with the Accelerator that put it there: made once by
    ``place_model`` and reused by every call of a caller that keeps the model (``engine.load``, a server)."""

    accelerator: Any
    model: torch.nn.Module


def place_model(loaded: LoadedModel, quantize: str | None = None) -> Placed:
    """``loaded.model`` on this process's device, for inference; ``quantize="int8"``: its encoder in int8 first (in
    place), which only the CPU runs."""
    from accelerate import Accelerator

    accelerator = Accelerator()
    if quantize == "int8":
        if accelerator.device.type != "cpu":
            raise EngineError(f"--quantize int8 is a CPU serving path; this process runs on {accelerator.device}. "
                              "Predict without it (a GPU is faster in the model's own precision)")
        quantize_int8(loaded.model)
    return Placed(accelerator, accelerator.prepare_model(loaded.model, evaluation_mode=True))


def run_inference(loaded: LoadedModel, split: Split, batch_size: int, *, labelled: bool, description: str,
                  quantize: str | None = None, placed: Placed | None = None) -> Inference:
    """Encode ``split`` as training did and run the model over it (on every process under a distributed launch);
    ``quantize="int8"``: with the encoder in int8, on the CPU. ``placed``: the model as ``place_model`` placed it
    (and quantized it) before, so ``quantize`` is not used."""
    placed = placed or place_model(loaded, quantize)
    accelerator = placed.accelerator
    features = first_on_node(accelerator, lambda: encode_split(
        loaded.task, split, loaded.tokenizer, loaded.meta["max_length"], labelled=labelled,
        key=feature_key(loaded.meta["task"], loaded.meta.get("plugins", {}).get(loaded.task_plugin))))
    outputs, loss = infer(placed.model, features, loaded.task, loaded.tokenizer, batch_size, accelerator, description)
    return Inference(split, features, outputs, loss, accelerator.is_main_process)


def is_main_process() -> bool:
    """Whether this process writes what the inference computed: the first under a distributed launch, else the
    only one."""
    from accelerate import PartialState

    return bool(PartialState().is_main_process)
