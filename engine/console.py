"""What the user sees while the engine works: messages, warnings, progress bars and the metrics table. Only the
main process prints."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# Progress and messages. Long lines are left to the terminal to wrap: cut at 80 columns, a log (no terminal) would
# split one message over several lines.
console = Console(stderr=True, highlight=False, soft_wrap=True)
results = Console(highlight=False)  # what a command produces: tables on standard output


def set_quiet(quiet: bool) -> None:
    """Silence this process (every process but the main one, under a distributed launch)."""
    console.quiet = results.quiet = quiet


class RateColumn(ProgressColumn):
    """Items per second, named by the task's ``unit`` field."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")


PROGRESS_SECONDS = "ENGINE_PROGRESS_SECONDS"  # seconds between progress lines when output is not a terminal


def progress(transient: bool = False) -> Any:  # rich.progress.Progress, or LineProgress
    """A progress bar with throughput and ETA; ``postfix`` carries live values such as the loss.

    Without a terminal (a CI log, ``| tee``), a bar would be drawn once, at the end: progress is then a plain line
    every ``ENGINE_PROGRESS_SECONDS`` seconds (default 30) and one when a bar finishes (not for transient bars)."""
    if not console.is_terminal:
        return LineProgress(float(os.environ.get(PROGRESS_SECONDS, "30")), transient, quiet=console.quiet)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[postfix]}"),
        console=console,
        transient=transient,
        disable=console.quiet,
    )


@dataclass
class _Line:
    description: str
    total: float | None
    completed: float
    unit: str
    postfix: str
    started: float = field(default_factory=time.monotonic)
    start_completed: float = 0.0
    printed: tuple[str, float, float | None] | None = None


class LineProgress:
    """What ``progress()`` gives without a terminal: the calls of rich's ``Progress`` that the engine makes
    (``add_task``, ``update``, ``advance``), written as a line every ``every`` seconds."""

    def __init__(self, every: float, transient: bool = False, *, quiet: bool = False) -> None:
        self.every, self.transient, self.quiet = every, transient, quiet
        self.tasks: list[_Line] = []
        self.last = time.monotonic()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.transient and exc[0] is None:
            for task, line in enumerate(self.tasks):
                if line.printed != (line.description, line.completed, line.total):  # the last state, once
                    self._print(task)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        self.tasks.append(_Line(description, total, completed, str(fields.get("unit", "it")),
                                str(fields.get("postfix", "")), start_completed=completed))
        return len(self.tasks) - 1

    def update(self, task: int, *, description: str | None = None, total: float | None = None,
               completed: float | None = None, advance: float = 0, **fields: Any) -> None:
        line = self.tasks[task]
        if description is not None:
            line.description = description
        if total is not None:
            line.total = total
        if completed is not None:
            line.completed = completed
        line.completed += advance
        if "postfix" in fields:
            line.postfix = str(fields["postfix"])
        if time.monotonic() - self.last >= self.every:
            self._print(task)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def _print(self, task: int) -> None:
        self.last = time.monotonic()
        if self.quiet:
            return
        line = self.tasks[task]
        line.printed = (line.description, line.completed, line.total)
        elapsed = self.last - line.started
        rate = (line.completed - line.start_completed) / elapsed if elapsed > 0 else 0.0
        parts = [f"{line.description}: {line.completed:,.0f}" + (f"/{line.total:,.0f}" if line.total else "")
                 + f" {line.unit}"]
        if rate:
            parts.append(f"{rate:,.1f} {line.unit}/s")
            if line.total and line.total > line.completed:
                parts.append(f"eta {duration((line.total - line.completed) / rate)}")
        if line.postfix:
            parts.append(line.postfix)
        console.print(", ".join(parts), markup=False, soft_wrap=True)


def duration(seconds: float) -> str:
    """``45 s``, ``2 min 10 s``, ``1 h 5 min``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


def info(message: str) -> None:
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}")


def error(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def metrics_table(metrics: dict[str, dict[str, float]], title: str = "Metrics",
                  baseline: Mapping[str, Mapping[str, float | None]] | None = None, baseline_name: str = "") -> None:
    """Metric names as rows, splits as columns: a task may report many metrics (one per entity type, per target),
    and a table as wide as its metrics gets cut to the terminal's width. ``baseline``: the same metrics of what a
    model that ignores the text predicts (``baseline_name``), by split, each in a column beside its split's."""
    baseline = baseline or {}
    columns: dict[str, Mapping[str, Any]] = {}
    for split, values in metrics.items():
        columns[split] = values
        if split in baseline:
            columns[f"{split} baseline"] = baseline[split]
    names: list[str] = []
    for values in metrics.values():
        names.extend(n for n in values if n not in names and not isinstance(values[n], dict))
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right", style="dim" if column.endswith(" baseline") else None)
    for name in names:
        table.add_row(name, *(_fmt(values.get(name)) for values in columns.values()))
    results.print(table)
    if baseline and baseline_name:
        results.print(f"baseline: {escape(baseline_name)}, the text ignored", style="dim")


def published_table(entries: list[dict[str, Any]]) -> None:
    """Published scores on the run's benchmark beside its own (``RunResult.published``): "is this good?". A name the
    task does not know gets one line naming the ones it does."""
    for entry in entries:
        task = f"{entry['task']}: " if entry.get("task") else ""
        if not entry["scores"]:
            known = ", ".join(entry["known"]) or "none"
            results.print(f"{escape(task)}no published score known for data.benchmark {entry['benchmark']!r} and "
                          f"this run's metrics (known benchmarks: {escape(known)})", style="dim")
            continue
        by_metric: dict[str, list[dict[str, Any]]] = {}
        for row in entry["scores"]:
            by_metric.setdefault(row["metric"], []).append(row)
        for metric, rows in by_metric.items():
            results.print(f"{escape(task)}[bold]published on {escape(entry['benchmark'])}[/], beside this run's "
                          f"{escape(metric)} {rows[0]['run']:.4f} ({escape(rows[0]['run_split'])}):")
            for row in rows:
                size = ", this model's size" if row["same_size"] else ""
                results.print(f"  {row['published']:.4f}  {escape(row['model'])}{size}; "
                              f"{escape(row['published_split'])}; {escape(row['source'])}")
        results.print("published scores: full training sets, the benchmark's own splits and tuned settings; a "
                      "smaller model, or another split, scores lower", style="dim")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
