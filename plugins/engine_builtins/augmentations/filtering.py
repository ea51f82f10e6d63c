"""The label-preservation filter: drop augmented rows a finished run labels differently."""

from __future__ import annotations

from engine import Register


def declare(register: Register) -> None:
    """Nothing declared yet."""
