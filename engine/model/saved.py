"""A trained model on disk and back: model/ in ``save_pretrained``'s layout (loadable by plain transformers where the
head is one it knows), with the head's weights, the tokenizer and engine.json beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import EngineError
from engine.model.encoder import EngineModel

HEAD_WEIGHTS = "head.safetensors"
ENGINE_FILE = "engine.json"

HF_AUTO_CLASSES = {
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
}


def save_model(
    directory: Path, model: EngineModel, tokenizer: Any, *, task_config: dict[str, Any], head_config: dict[str, Any],
    task_state: dict[str, Any], hf_config: dict[str, Any], extra: dict[str, Any], num_outputs: int | None = None,
) -> bool:
    """Write ``directory`` (which must not exist yet). Returns whether plain transformers can load it as a whole.

    The encoder goes through ``save_pretrained``'s format; when the head is one transformers knows (its
    ``hf_export()`` names an auto class whose head has exactly the head's weights), its weights join the checkpoint
    under transformers' names, so ``AutoModelFor...from_pretrained`` loads the whole model. The head's own weights
    are always in ``head.safetensors`` too, which ``engine predict`` reads.

    The claim is checked, not assumed: the config gets the task's keys (and, when the task names no labels, the
    head's ``num_outputs`` as ``num_labels``), and every weight the transformers class expects must be there with
    its shape, on the meta device.
    """
    from safetensors.torch import save_file

    backbone, head = unwrap(model.backbone), unwrap(model.head)
    config = backbone.config
    for key, value in hf_config.items():
        setattr(config, key, value)
    if num_outputs is not None and not {"id2label", "num_labels"} & set(hf_config):
        config.num_labels = num_outputs
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}
    hf_loadable = False
    export = head.hf_export() if hasattr(head, "hf_export") else None
    if export is not None:
        kind, head_state = export
        hf_class = transformers_class(kind, config)
        if hf_class is not None:
            prefix = hf_class.base_model_prefix
            candidate = {f"{prefix}.{k}": v for k, v in state.items()}
            candidate.update({k: v.detach().cpu().contiguous() for k, v in head_state.items()})
            with torch.device("meta"):
                expected = {k: v.shape for k, v in hf_class(config).state_dict().items()}
            # Encoder weights the class leaves out (BERT's pooler, under ...ForTokenClassification) may stay:
            # transformers skips them when loading, and engine predict needs the whole encoder back.
            unused = set(candidate) - set(expected)
            if (set(expected) <= set(candidate) and all(k.startswith(f"{prefix}.") for k in unused)
                    and all(candidate[k].shape == shape for k, shape in expected.items())):
                state, hf_loadable = candidate, True
                config.architectures = [hf_class.__name__]
    if not hf_loadable:
        config.architectures = [type(backbone).__name__]

    directory.mkdir(parents=True)
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(directory)
    meta = {"task": task_config, "task_state": task_state, "head": head_config, "transformers_loadable": hf_loadable,
            **extra}
    write_head_files(directory, head, tokenizer, meta)
    return hf_loadable


def write_head_files(directory: Path, head: nn.Module, tokenizer: Any, meta: dict[str, Any]) -> None:
    """What every saved model folder has besides its encoder: the head's weights, the tokenizer and engine.json
    (the task, its state and the head's section: what `engine predict` rebuilds them from)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(directory / HEAD_WEIGHTS))
    tokenizer.save_pretrained(directory)
    (directory / ENGINE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def transformers_class(kind: str, config: Any) -> Any:
    import transformers

    auto = getattr(transformers, HF_AUTO_CLASSES.get(kind, ""), None)
    if auto is None:
        return None
    mapping = auto._model_mapping
    return mapping.get(type(config), None)


def unwrap(module: nn.Module) -> Any:
    """The module a wrapper (DDP) holds; typed Any: it is a transformers model or a plugin's head."""
    return getattr(module, "module", module)


def read_engine_file(directory: Path) -> dict[str, Any]:
    path = directory / ENGINE_FILE
    if not path.is_file():
        raise EngineError(f"{directory}: not a saved engine model (no {ENGINE_FILE}); "
                          "expected a run directory's model/")
    return json.loads(path.read_text(encoding="utf-8"))


def load_backbone(directory: Path) -> tuple[Any, nn.Module]:
    """The tokenizer and encoder of a saved model, whether or not its checkpoint carries a transformers head (a saved
    adapter is loaded by ``engine.model.adapters.load_adapted_backbone``)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    backbone = AutoModel.from_config(config)
    state = load_file(str(directory / "model.safetensors"))
    prefix = backbone.base_model_prefix + "."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EngineError(f"{directory}/model.safetensors does not match the encoder: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return tokenizer, backbone


def load_head_weights(head: nn.Module, directory: Path) -> None:
    from safetensors.torch import load_file

    head.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
