"""Moved to ``engine.report.charts`` in engine 0.3; this path imports, with a DeprecationWarning, until 0.4."""

from engine.deprecation import warn_moved

warn_moved(__name__)

from engine.report.charts import *  # noqa: E402, F403
