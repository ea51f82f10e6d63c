"""What a resumed run may change in its task file: the keys that say how long to train, how often to save and
evaluate, and what to watch; not the keys that decide what the checkpoint's weights, optimizer and batches are."""

from __future__ import annotations

from typing import Any

from engine.config.resolve import flatten

#: Dotted task-file keys a --resume may change (with their sub-keys).
RESUMABLE = ("training.epochs", "training.min_steps", "training.max_steps", "training.save_steps",
             "training.save_minutes", "training.save_total_limit", "training.eval_steps", "training.report",
             "training.report_to", "training.threads", "training.eval_batch_size", "callbacks", "output_dir", "search")


#: Keys a later engine added to the resolved task file, with the value that keeps a run saved before them as it was
#: planned (0.2's runs had no floor of steps).
ADDED_KEYS = {"training.min_steps": 0}


def as_planned(saved: Any, training: Any) -> Any:
    """``training`` for a resume of the run whose task.json is ``saved``: each ``training.*`` key of ``ADDED_KEYS``
    that ``saved`` predates takes the value that keeps the run as it was planned, unless the task file now writes
    the key itself."""
    saved_training = saved.get("training") if isinstance(saved, dict) else None
    if not isinstance(saved_training, dict):
        return training
    added = {dotted.split(".", 1)[1]: value for dotted, value in ADDED_KEYS.items() if dotted.startswith("training.")}
    update = {key: value for key, value in added.items()
              if key not in saved_training and key not in training.model_fields_set}
    return training.model_copy(update=update) if update else training


def as_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """``saved`` flattened, a key it predates at its ``ADDED_KEYS`` value."""
    return {**ADDED_KEYS, **flatten(saved)}


def changed_keys(saved: dict[str, Any], now: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(keys a resume may change, keys it may not) on which two resolved task files differ (a key ``saved``
    predates counts as its ``ADDED_KEYS`` value)."""
    old, new = as_saved(saved), flatten(now)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    safe = [k for k in changed if any(k == r or k.startswith(f"{r}.") for r in RESUMABLE)]
    return safe, [k for k in changed if k not in safe]
