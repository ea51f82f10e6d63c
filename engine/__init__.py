"""engine: fine-tune pretrained transformer encoders from one task.json, extended by plugins.

Plugin authors need only what is exported here; see docs/plugins.md. This is the plugin contract: it changes only
with a minor version, and what it removes is deprecated for one minor version first (``engine.deprecation``).
"""

from engine.callbacks import Callback, TrainerState
from engine.data import LINE, DataOptions, Split
from engine.errors import ConfigError, DataError, EngineError, PluginError
from engine.head import HeadOutput, HeadSpec
from engine.hookspecs import hookimpl
from engine.registry import Augmentation, Metric, Register
from engine.report import Report
from engine.task import Task

__version__ = "0.2.0"
__all__ = [
    "LINE",
    "Augmentation",
    "Callback",
    "ConfigError",
    "DataError",
    "DataOptions",
    "EngineError",
    "HeadOutput",
    "HeadSpec",
    "Metric",
    "PluginError",
    "Register",
    "Report",
    "Split",
    "Task",
    "TrainerState",
    "__version__",
    "hookimpl",
]
