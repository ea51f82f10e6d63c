"""engine: fine-tune pretrained transformer encoders from one task.json, extended by plugins.

Plugin authors need only what is exported here; see docs/plugins.md.
"""

from engine.callbacks import Callback, TrainerState
from engine.data import LINE, DataOptions, Split
from engine.errors import ConfigError, DataError, EngineError, PluginError
from engine.hookspecs import hookimpl
from engine.task import Task

__version__ = "0.2.0"
__all__ = [
    "LINE",
    "Callback",
    "ConfigError",
    "DataError",
    "DataOptions",
    "EngineError",
    "PluginError",
    "Split",
    "Task",
    "TrainerState",
    "__version__",
    "hookimpl",
]
