"""Checks across sections: every monitored value is one the run computes, with a known direction."""

from __future__ import annotations

from typing import Any

from engine.config.choice import Choice
from engine.config.sections import TrainingConfig
from engine.errors import ConfigIssue, did_you_mean


def check_monitors(training: TrainingConfig, callbacks: list[Choice], metrics: list[Choice], task: Any,
                   data: Choice | None, issues: list[ConfigIssue]) -> dict[str, str]:
    """Every monitored value (``training.monitor``, or the task's default; a callback's ``monitor``) must be one the
    run computes after each evaluation, with a known direction. Returns each monitor's direction."""
    watched: list[tuple[str, str, str, str, bool]] = [
        ("training.monitor", training.effective_monitor(task), "training.mode", training.mode,
         training.monitor is not None)]
    for i, choice in enumerate(callbacks):
        monitor = getattr(choice.options, "monitor", None)
        if isinstance(monitor, str):
            mode = getattr(choice.options, "mode", "auto")
            watched.append((f"callbacks.{i}.monitor", monitor, f"callbacks.{i}.mode", mode, True))
    has_validation = getattr(data.options, "validation", "") if data is not None else ""
    if data is not None and getattr(data.options, "validation_split", None):
        has_validation = "held out"
    directions: dict[str, str] = {}
    for path, monitor, mode_path, mode, chosen in watched:
        split, _, name = monitor.partition(".")
        if not name:
            issues.append(ConfigIssue(path, f"expected SPLIT.METRIC such as 'validation.accuracy', got {monitor!r}"))
            continue
        if split != "validation":
            issues.append(ConfigIssue(path, f"{monitor!r}: monitors are read after each evaluation of the validation "
                                      f"split; expected 'validation.{name}'"))
            continue
        if has_validation is None:  # a format with a `validation` key, left empty: nothing to monitor
            if chosen:
                issues.append(ConfigIssue(path, f"{monitor!r}, but data.validation is not set: there is no "
                                          "validation split to monitor"))
            continue
        producers = [m for m in metrics if m.component.produce(name)]
        if name != "loss" and not producers and all(m.component.produces is not None for m in metrics):
            computed = ["loss", *(p for m in metrics for p in m.component.produces or ())]
            default = "" if chosen else f"the task's default, {monitor!r}: "
            issues.append(ConfigIssue(path, f"{default}no metric computes {name!r}{did_you_mean(name, computed)}; "
                                      f"the metrics compute: {', '.join(computed)} "
                                      "(add a metric, or monitor one of these)"))
            continue
        direction = monitor_direction(monitor, mode, producers, task)
        if direction is None:
            issues.append(ConfigIssue(mode_path, f"cannot tell whether {monitor!r} improves up or down: no metric "
                                      "declares it (register(..., higher_is_better=...)); set \"max\" or \"min\""))
            continue
        directions[monitor] = direction
    return directions


def monitor_direction(monitor: str, mode: str, producers: list[Choice], task: Any) -> str | None:
    """The one rule for which way a monitored value improves: the task file's mode when set; else "min" for the loss;
    else what the metric computing it declared; else the task's own direction for its default monitor."""
    if mode != "auto":
        return mode
    if monitor.partition(".")[2] == "loss":
        return "min"
    for choice in producers:
        if choice.component.higher_is_better is not None:
            return "max" if choice.component.higher_is_better else "min"
    return getattr(task, "monitor_mode", None) if monitor == getattr(task, "monitor", None) else None
