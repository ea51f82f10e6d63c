"""Tagging: mention replacement (Dai & Adel 2020), tags kept aligned."""

from __future__ import annotations

from engine import Register


def declare(register: Register) -> None:
    """Nothing declared yet."""
