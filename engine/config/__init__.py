"""The task file: the core's sections (``sections``), component sections resolved (``choice``), checks across
sections (``checks``), reading and resolving a whole file (``resolve``), the ``tasks`` section of a multi-task file
(``multitask``) and its JSON Schema (``schema``)."""

from engine.config.checks import monitor_direction
from engine.config.choice import Choice, ResolvedTask
from engine.config.resolve import apply_overrides, read_task_file, resolve

__all__ = ["Choice", "ResolvedTask", "apply_overrides", "monitor_direction", "read_task_file", "resolve"]
