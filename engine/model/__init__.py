"""The model: the encoder and head together (``encoder``), saved and loaded again (``saved``), adapters (``adapters``),
the first-token last layer (``first_token``), int8 quantization (``quantize``) and one encoder with a head per task
(``multitask``)."""

from engine.model.encoder import EngineModel

__all__ = ["EngineModel"]
