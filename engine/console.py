"""Everything the user sees: the one place that uses rich. Only the main process prints."""

from __future__ import annotations

from collections.abc import Iterable
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

console = Console(stderr=True, highlight=False)  # progress and messages
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


def progress(transient: bool = False) -> Progress:
    """A progress bar with throughput and ETA; ``postfix`` carries live values such as the loss."""
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


def track(items: Iterable[Any], total: int, description: str, unit: str = "rows") -> Iterable[Any]:
    with progress(transient=True) as bar:
        task = bar.add_task(description, total=total, unit=unit, postfix="")
        for item in items:
            yield item
            bar.advance(task)


def info(message: str) -> None:
    console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}")


def error(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def metrics_table(metrics: dict[str, dict[str, float]], title: str = "Metrics") -> None:
    """Metric names as rows, splits as columns: a task may report many metrics (one per entity type, per target),
    and a table as wide as its metrics gets cut to the terminal's width."""
    names: list[str] = []
    for values in metrics.values():
        names.extend(n for n in values if n not in names and not isinstance(values[n], dict))
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for split in metrics:
        table.add_column(split, justify="right")
    for name in names:
        table.add_row(name, *(_fmt(values.get(name)) for values in metrics.values()))
    results.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
