"""Plugins: which load, from where, and what they declared (``manager``); the plugins a saved run recorded, found
again (``recorded``)."""

from engine.plugins.manager import PluginManager, load_plugins

__all__ = ["PluginManager", "load_plugins"]
