"""What a resumed run may change in its task file: the keys that say how long to train, how often to save and
evaluate, and what to watch; not the keys that decide what the checkpoint's weights, optimizer and batches are."""

from __future__ import annotations

from typing import Any

#: Dotted task-file keys a --resume may change (with their sub-keys).
RESUMABLE = ("training.epochs", "training.max_steps", "training.save_steps", "training.save_minutes",
             "training.save_total_limit", "training.eval_steps", "training.report", "training.report_to",
             "training.threads", "training.eval_batch_size", "callbacks", "output_dir", "search")


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested task file as dotted keys (``training.epochs``) and their values; a list counts as one value."""
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys a resume may change, keys it may not) on which two resolved task files differ."""
    old, new = flatten(saved), flatten(now)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    safe = [k for k in changed if any(k == r or k.startswith(f"{r}.") for r in RESUMABLE)]
    return safe, [k for k in changed if k not in safe]
