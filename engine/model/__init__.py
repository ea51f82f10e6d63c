"""The model: the encoder and head together (``encoder``), saved and loaded again (``saved``), adapters (``adapters``),
the first-token last layer (``first_token``) and int8 quantization (``quantize``)."""

from engine.model.encoder import EngineModel

__all__ = ["EngineModel"]
