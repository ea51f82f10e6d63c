"""Parameter-efficient fine-tuning through peft: the task file's ``adapter`` section.

An adapter (LoRA, DoRA, IA3) is injected into the encoder in place: the encoder keeps its class and its forward,
its pretrained weights stay frozen, and only the adapter's few weights train, with the head, which always trains
whole. The freezing strategy still applies, to the adapter's weights (``gradual`` unfreezes LoRA layer by layer).

A run with an adapter saves two things (``write_adapter_dir``): ``RUN_DIR/adapter/``, the adapter alone (megabytes;
``engine predict`` loads the base model it names and applies it; peft's ``PeftModel.from_pretrained`` reads it too),
and ``RUN_DIR/model/`` as every run does, with the adapter merged into the encoder's weights, so that plain
transformers loads it when the head is a standard one.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config.sections import AdapterConfig
from engine.errors import EngineError
from engine.model.encoder import load_pretrained
from engine.model.saved import write_head_files

if TYPE_CHECKING:
    from torch import nn

ADAPTER_DIR = "adapter"


def peft_config(options: AdapterConfig, backbone: nn.Module) -> Any:
    """peft's config object for the section, targets filled in for the architecture."""
    import peft

    model_type = getattr(getattr(backbone, "config", None), "model_type", "")
    targets: Any = options.target_modules
    if options.name == "ia3":
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
        )
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as IA3_TARGETS,
        )

        if targets is None and model_type not in IA3_TARGETS:
            raise EngineError(f"adapter: peft has no IA3 defaults for {model_type!r} encoders; set "
                              "adapter.target_modules (and adapter.peft.feedforward_modules)")
        kwargs: dict[str, Any] = {"target_modules": targets or IA3_TARGETS[model_type]}
        if targets is None:
            kwargs["feedforward_modules"] = FEEDFORWARD[model_type]
        make: Any = peft.IA3Config
    else:
        from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as LORA_TARGETS

        if targets is None:
            targets = LORA_TARGETS.get(model_type, "all-linear")
        kwargs = {"r": options.r, "lora_alpha": options.alpha, "lora_dropout": options.dropout,
                  "target_modules": targets, "use_dora": options.name == "dora"}
        make = peft.LoraConfig
    try:
        return make(**{**kwargs, **options.peft})
    except (TypeError, ValueError) as exc:
        raise EngineError(f"adapter: peft's {make.__name__} refuses these options: {exc}") from None


def check_rank(options: AdapterConfig, backbone: nn.Module) -> None:
    """A LoRA update of rank r on a layer h wide has rank at most h: an r above the encoder's width adds weights
    and nothing else (r 4096 on a 384-wide model trains more weights than the model has)."""
    width = getattr(getattr(backbone, "config", None), "hidden_size", None)
    if options.name != "ia3" and isinstance(width, int) and options.r > width:
        raise EngineError(f"adapter.r {options.r} is larger than the encoder's hidden size {width}: a rank-r update "
                          f"of a {width}-wide layer has rank at most {width}. LoRA ranks are usually 4 to 64; set "
                          f"adapter.r to at most {width}")


class Adapter:
    """An adapter injected into an encoder; what the trainer, freezing and saving need from it."""

    def __init__(self, options: AdapterConfig, backbone: nn.Module) -> None:
        import peft

        self.options = options
        check_rank(options, backbone)
        self.config = peft_config(options, backbone)
        with warnings.catch_warnings():  # deprecation notices from transformers, raised inside peft
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self.peft_model = peft.get_peft_model(backbone, self.config)
            except ValueError as exc:  # e.g. target modules not found in the model
                raise EngineError(f"adapter: {exc}") from None
        self.backbone = backbone  # adapted in place: the same module, its linear layers wrapped
        self.names = {name for name, p in backbone.named_parameters() if p.requires_grad}
        targets = self.config.target_modules
        #: What the plan and the manifest say about it (counted now: merging removes the adapter's weights).
        self.description = {
            "method": options.name, "peft_type": str(self.config.peft_type.value),
            "target_modules": sorted(targets) if isinstance(targets, (set, list)) else targets,
            "parameters": sum(p.numel() for name, p in backbone.named_parameters() if name in self.names)}

    def keep_base_frozen(self, backbone: nn.Module) -> None:
        """After a freezing strategy ran: the pretrained weights stay frozen whatever it decided."""
        for name, param in backbone.named_parameters():
            if name not in self.names:
                param.requires_grad = False

    def check_trains(self, backbone: nn.Module, freeze: str) -> None:
        """After the freezing strategy decided what trains at any epoch: some adapter weight must, or the adapter
        would be saved as it was initialised."""
        if not any(p.requires_grad for name, p in backbone.named_parameters() if name in self.names):
            raise EngineError(f"freeze {freeze!r} freezes every weight of the adapter, at every epoch: it would be "
                              f"saved untrained. With an adapter the pretrained weights stay frozen anyway; use "
                              "freeze 'none' (or a strategy that leaves some encoder layers to train)")

    def describe(self) -> dict[str, Any]:
        """The method, peft's resolved targets and the adapter's weight count."""
        return dict(self.description)

    def save(self, directory: Path) -> None:
        """The adapter's weights and config in peft's format (adapter_model.safetensors, adapter_config.json)."""
        self.peft_model.save_pretrained(str(directory))

    def merge(self) -> nn.Module:
        """Fold the adapter into the encoder's weights (in place) and return the plain encoder."""
        return self.peft_model.merge_and_unload()


class FreezeWithAdapter:
    """A freezing strategy, then the adapter's rule: base weights frozen. (The strategy's own choices still decide
    which adapter weights and which head weights train.)"""

    def __init__(self, freezer: Any, adapter: Adapter) -> None:
        self.freezer, self.adapter = freezer, adapter

    def apply(self, model: Any, epoch: int) -> None:
        self.freezer.apply(model, epoch)
        self.adapter.keep_base_frozen(model.backbone)


def load_adapted_backbone(directory: Path, meta: dict[str, Any]) -> tuple[Any, nn.Module]:
    """The tokenizer and encoder of a saved adapter: the base model it was trained on, the adapter merged in."""
    import peft
    from transformers import AutoTokenizer

    base = meta["adapter"]
    _, backbone = load_pretrained(base["base_model"], base.get("revision"))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            adapted = peft.PeftModel.from_pretrained(backbone, str(directory))
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineError(f"{directory}: cannot apply the adapter to {base['base_model']!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    return tokenizer, adapted.merge_and_unload()


def adapter_meta(model_name: str, revision: str | None, adapter: Adapter) -> dict[str, Any]:
    return {"base_model": model_name, "revision": revision, **adapter.describe()}


def write_adapter_dir(directory: Path, adapter: Adapter, head: nn.Module, tokenizer: Any,
                      meta: dict[str, Any]) -> None:
    """RUN_DIR/adapter/ (``directory`` must not exist): the adapter, the head, the tokenizer and engine.json, which
    names the base model; everything engine predict needs besides that base model."""
    directory.mkdir(parents=True)
    adapter.save(directory)
    write_head_files(directory, head, tokenizer, meta)
