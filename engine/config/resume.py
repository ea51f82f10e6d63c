"""What a resumed run may change in its task file: the keys that say how long to train, how often to save and
evaluate, and what to watch; not the keys that decide what the checkpoint's weights, optimizer and batches are."""

from __future__ import annotations

from typing import Any

from engine.config.resolve import flatten

#: Dotted task-file keys a --resume may change (with their sub-keys).
RESUMABLE = ("training.epochs", "training.min_steps", "training.max_steps", "training.save_steps",
             "training.save_minutes", "training.save_total_limit", "training.eval_steps", "training.report",
             "training.report_to", "training.threads", "training.eval_batch_size", "callbacks", "output_dir", "search")


#: Keys whose default changed after 0.2, each with the value 0.2's runs trained with: a resumed run keeps the value
#: its task.json saved (this one where the file predates the key: 0.2's runs had no floor of steps) unless the task
#: file now writes the key itself, so that a run continues as it was planned whatever today's defaults are.
CHANGED_DEFAULTS: dict[str, Any] = {"training.min_steps": 0, "optimizer.layer_decay": None}
#: The keys of ``CHANGED_DEFAULTS`` a saved task.json may lack (added after 0.2).
ADDED_KEYS = {"training.min_steps": 0}


def as_planned(saved: Any, resolved: Any) -> None:
    """Set, in ``resolved`` (a ``ResolvedTask`` resuming the run whose task.json is ``saved``), each key of
    ``CHANGED_DEFAULTS`` that the task file does not write to the saved run's value: in the core's ``training``
    section, or in a component's options when the run used the same component. (A task's defaults are not the task
    file's: they changed with the engine.)"""
    from engine.config.choice import Choice

    if not isinstance(saved, dict) or not isinstance(saved.get("training"), dict):
        return
    old, written = as_saved(saved), flatten(resolved.raw_as_written or {})
    for dotted in (k for k in CHANGED_DEFAULTS if k in old):
        section, key = dotted.split(".", 1)
        current = getattr(resolved, section)
        if isinstance(current, Choice):
            if (dotted in written or current.options is None or key not in type(current.options).model_fields
                    or old.get(f"{section}.name") != current.name):
                continue
            current.options = current.options.model_copy(update={key: old[dotted]})
            if key in current.raw:  # a task's default, which task.json would record over the options
                current.raw = {**current.raw, key: old[dotted]}
        elif key not in current.model_fields_set:  # a core section: what the file writes, or implies (epochs
            setattr(resolved, section, current.model_copy(update={key: old[dotted]}))  # written: no floor)


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
