"""int8 inference on the CPU: the encoder's linear layers quantized dynamically (``--quantize int8``)."""

from __future__ import annotations

from engine.errors import EngineError
from engine.model.encoder import EngineModel


def quantize_int8(model: EngineModel) -> EngineModel:
    """The encoder's ``nn.Linear`` layers with int8 weights, activations quantized per batch (torch's dynamic
    quantization, for CPU inference); the head stays as trained. In place; returns the model."""
    import warnings

    import torch

    quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise EngineError(f"--quantize int8: this torch ({torch.__version__}) has no dynamic quantization "
                          "(torch.ao.quantization.quantize_dynamic); predict without --quantize")
    with warnings.catch_warnings():  # torch announces the move of this API to torchao; it works as documented here
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.backbone = quantization.quantize_dynamic(model.backbone, {torch.nn.Linear}, dtype=torch.qint8)
    return model
