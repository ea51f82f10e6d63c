"""Rewrites by a model: back-translation and contextual substitution."""

from __future__ import annotations

from engine import Register


def declare(register: Register) -> None:
    """Nothing declared yet."""
