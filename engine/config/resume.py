"""What a resumed run may change in its task file: the keys that say how long to train, how often to save and
evaluate, and what to watch; not the keys that decide what the checkpoint's weights, optimizer and batches are."""

from __future__ import annotations

from typing import Any

from engine.config.resolve import flatten

#: Dotted task-file keys a --resume may change (with their sub-keys).
RESUMABLE = ("training.epochs", "training.min_steps", "training.max_steps", "training.save_steps",
             "training.save_minutes", "training.save_total_limit", "training.eval_steps", "training.report",
             "training.report_to", "training.threads", "training.eval_batch_size", "callbacks", "output_dir", "search")


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys a resume may change, keys it may not) on which two resolved task files differ."""
    old, new = flatten(saved), flatten(now)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    safe = [k for k in changed if any(k == r or k.startswith(f"{r}.") for r in RESUMABLE)]
    return safe, [k for k in changed if k not in safe]
