"""Moved to ``engine.data.cache`` in engine 0.3; this path imports, with a DeprecationWarning, until 0.4."""

from engine.deprecation import warn_moved

warn_moved(__name__)

from engine.data.cache import *  # noqa: E402, F403
