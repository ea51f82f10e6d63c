"""engine: fine-tune pretrained transformer encoders from one task.json, extended by plugins.

Plugin authors need only what is exported here; see docs/plugins.md. This is the plugin contract: it changes only
with a minor version, and what it removes is deprecated for one minor version first (``engine.deprecation``).
Applications use the Python API (``train``, ``load``, ``Predictor``, ``RunResult``; README.md, "Python API").

The names load on first use (PEP 562), so that ``engine --help`` and other light commands import no pydantic,
pluggy or torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.api import Predictor, RunResult, load, train
    from engine.callbacks import Callback, TrainerState
    from engine.data.split import LINE, DataOptions, Split
    from engine.errors import ConfigError, DataError, EngineError, PluginError
    from engine.head import HeadOutput, HeadSpec
    from engine.hookspecs import hookimpl
    from engine.registry import Augmentation, Metric, Register
    from engine.report.document import Report
    from engine.task import PublishedScore, Task

from engine.version import __version__

# exported name -> the module that defines it
_EXPORTS = {
    "Callback": "engine.callbacks", "TrainerState": "engine.callbacks",
    "LINE": "engine.data.split", "DataOptions": "engine.data.split", "Split": "engine.data.split",
    "ConfigError": "engine.errors", "DataError": "engine.errors", "EngineError": "engine.errors",
    "PluginError": "engine.errors",
    "HeadOutput": "engine.head", "HeadSpec": "engine.head",
    "hookimpl": "engine.hookspecs",
    "Augmentation": "engine.registry", "Metric": "engine.registry", "Register": "engine.registry",
    "Report": "engine.report.document",
    "Task": "engine.task",
    "PublishedScore": "engine.task",
    "train": "engine.api.runs", "RunResult": "engine.api.runs", "load": "engine.api.predictor",
    "Predictor": "engine.api.predictor", "export": "engine.api.exporting", "Exported": "engine.api.exporting",
}

__all__ = [
    "LINE",
    "Augmentation",
    "Callback",
    "ConfigError",
    "DataError",
    "DataOptions",
    "EngineError",
    "Exported",
    "HeadOutput",
    "HeadSpec",
    "Metric",
    "PluginError",
    "Predictor",
    "PublishedScore",
    "Register",
    "Report",
    "RunResult",
    "Split",
    "Task",
    "TrainerState",
    "__version__",
    "export",
    "hookimpl",
    "load",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return list(__all__)
