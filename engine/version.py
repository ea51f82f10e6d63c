"""The engine's version, in a module of its own so that any room can read it without importing the package's
exports."""

__version__ = "0.2.0"
