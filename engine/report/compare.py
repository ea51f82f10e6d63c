"""`engine compare`: several runs side by side, the settings in which they differ and the metrics they reached."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from engine.config.resolve import flatten
from engine.errors import EngineError
from engine.report.charts import COLOURS, Panel, figure
from engine.report.document import Report, cell
from engine.rundir.reading import read_history, read_json, read_task_json

IGNORED = ("output_dir",)  # differs between any two runs, says nothing about the recipe


def run_summary(run_dir: Path) -> dict[str, Any]:
    """What one run's row is made of; a killed run gives its last evaluation for want of metrics.json."""
    config = read_task_json(run_dir)
    manifest = read_json(run_dir / "manifest.json") or {}
    train, evaluations = read_history(run_dir)
    metrics = read_json(run_dir / "metrics.json")
    values: dict[str, Any] = {}
    if isinstance(metrics, dict):
        values = {f"{split}.{k}": v for split, scores in metrics.items() for k, v in scores.items()}
    elif evaluations:
        values = {k: v for k, v in evaluations[-1].items() if "." in k}
    timing = manifest.get("training_time") or {}
    return {"dir": run_dir, "settings": flatten(config), "metrics": values, "train": train,
            "evaluations": evaluations, "status": manifest.get("status", "unknown"),
            "seconds": timing.get("seconds"), "monitor": (manifest.get("best") or {}).get("monitor")}


def names_of(run_dirs: list[Path]) -> list[str]:
    """Short, distinct labels: the folder names, or the paths where two folders share a name."""
    names = [d.name for d in run_dirs]
    return names if len(set(names)) == len(names) else [str(d) for d in run_dirs]


def compare(run_dirs: list[Path], output: Path) -> Any:
    """Write OUTPUT/index.html, comparison.svg and comparison.csv; return the table as a rich Table."""
    from rich.table import Table

    if len(run_dirs) < 2:
        raise EngineError("engine compare needs two or more run directories")
    runs = [run_summary(d) for d in run_dirs]
    names = names_of(run_dirs)
    keys = sorted({k for r in runs for k in r["settings"]} - set(IGNORED))
    differing = [k for k in keys if len({repr(r["settings"].get(k)) for r in runs}) > 1]
    metrics = sorted({k for r in runs for k in r["metrics"]}, key=lambda k: (not k.startswith("validation"), k))
    # One row per setting or metric, one column per run: reads down a terminal however many keys there are.
    header = ["", *names]
    rows = [[k, *(r["settings"].get(k) for r in runs)] for k in differing]
    rows += [[k, *(r["metrics"].get(k) for r in runs)] for k in metrics]
    rows += [["train seconds", *(r["seconds"] for r in runs)], ["status", *(r["status"] for r in runs)]]

    output.mkdir(parents=True, exist_ok=True)
    with (output / "comparison.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    report = Report(output, f"Comparison of {len(runs)} runs")
    section = report.section("Settings and metrics")
    section.text("Only the settings in which the runs differ; metrics from each run's metrics.json (a run that did "
                 "not finish: its last evaluation)." if differing else "The runs' settings are the same.")
    section.table(header, rows)
    plot(section, runs, names)
    report.write()
    table = Table(title=f"Comparison of {len(runs)} runs", title_justify="left")
    for column in header:
        table.add_column(column, overflow="fold", justify="left" if column == "" else "right", no_wrap=column == "")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    return table


def plot(section: Any, runs: list[dict[str, Any]], names: list[str]) -> None:
    """The monitored validation metric and the training loss of every run, by optimizer step."""
    monitor = next((r["monitor"] for r in runs if r["monitor"]), None)
    if monitor is None:
        monitor = next((k for r in runs for e in r["evaluations"] for k in e if "." in k), None)
    left = Panel(monitor or "no evaluations", xlabel="step", ylabel=monitor or "")
    right = Panel("Training loss", xlabel="step", ylabel="loss")
    for i, (name, run) in enumerate(zip(names, runs)):
        colour = COLOURS[i % len(COLOURS)]  # a run's colour is the same in both panels
        points = [(e["step"], e[monitor]) for e in run["evaluations"] if monitor in e]
        if points:
            left.line(*zip(*points), label=name, colour=colour, markers=True)
        losses = [(t["step"], t["loss"]) for t in run["train"] if "loss" in t]
        if losses:
            right.line(*zip(*losses), label=name, colour=colour, width=1)
    section.svg("comparison", f"{monitor or 'validation'} and training loss of each run, by optimizer step.",
                figure([left, right], width=1200, height=440))
