"""The run report: RUN_DIR/report/index.html, with its images beside it, made from what the run directory holds.

Written when a run ends (``training.report``) and again by ``engine report RUN_DIR``, also for a run that was
killed: the learning curves come from history.jsonl, the task's sections from predictions/SPLIT.jsonl (the best
model's, saved at each improvement), the tables from task.json and manifest.json. A task adds its own sections with
``Task.report`` (see docs/plugins.md). The built-in charts are SVG drawn by ``engine.report.charts``, which imports
nothing heavy; ``Section.figure`` gives a plugin a matplotlib figure, saved as PNG, drawn without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.resolve import flatten
from engine.report import charts
from engine.report.document import Report, Section, cell
from engine.rundir.reading import read_history, read_json, read_jsonl, read_task_json

REPORT_DIR = "report"


def write_report(run_dir: Path, task: Any = None, *, note: str | None = None,
                 tasks: dict[str, Any] | None = None) -> Path:
    """Make RUN_DIR/report/ from the run directory; ``task`` (the run's task object) adds its sections, or, for a
    multi-task run, ``tasks`` (each task's object by name) add theirs on predictions/NAME/. Returns the path of
    index.html."""
    config = read_task_json(run_dir)
    manifest = read_json(run_dir / "manifest.json") or {}
    metrics = read_json(run_dir / "metrics.json") or {}
    train, evaluations = read_history(run_dir)
    report = Report(run_dir / REPORT_DIR, f"Run report: {run_dir.name}")

    summary_section(report.section("Summary"), run_dir, config, manifest, metrics, evaluations)
    curves = report.section("Learning curves")
    if train or evaluations:
        learning_curves(curves, train, evaluations)
    else:
        curves.text("history.jsonl has no records yet: the run stopped before its first logged step.")

    predictions_dir = run_dir / "predictions"
    found = 0
    if note:
        report.section("Task sections").text(note)
    named: dict[str | None, Any] = {None: task} if not tasks else dict(tasks.items())
    for name, each in named.items():
        folder = predictions_dir / name if name is not None else predictions_dir
        splits = [s for s in ("validation", "test") if (folder / f"{s}.jsonl").is_file()]
        method: Any = getattr(each, "report", None)
        found += len(splits)
        for split in splits if method is not None and not note else []:
            records = list(read_jsonl(folder / f"{split}.jsonl"))
            which = "the best model's" if split == "validation" else "the saved model's"
            prefix = f"{name}: " if name is not None else ""
            method(report, f"{prefix}{split} ({which} predictions, {len(records):,} rows)",
                   [r.get("prediction") for r in records], [r.get("reference") for r in records])
    if not found:
        report.section("Predictions").text("No predictions/*.jsonl: the run had not evaluated yet when it stopped, or "
                                           "it has no validation or test data.")

    if manifest.get("augmentation"):
        augmentation_section(report.section("Augmentation"), manifest["augmentation"])
    settings = report.section("Settings")
    settings.text("The task file as run, every default filled in (task.json), as the --set keys that reproduce it.")
    settings.table(["key", "value"], sorted(flatten(config).items()))
    manifest_section(report.section("Manifest"), manifest)
    return report.write()


def summary_section(section: Section, run_dir: Path, config: dict[str, Any], manifest: dict[str, Any],
                    metrics: dict[str, Any], evaluations: list[dict[str, Any]]) -> None:
    task = config.get("task", {})
    model = config.get("model", {})
    status = manifest.get("status", "unknown")
    if status == "running":
        status = "stopped before it finished (killed, or still running)"
    rows: list[list[Any]] = [
        ["status", status],
        ["task", task.get("name") if isinstance(task, dict) else task],
        ["model", model.get("name") if isinstance(model, dict) else model],
        ["written", manifest.get("written")],
    ]
    best = manifest.get("best") or {}
    if best.get("monitor"):
        rows.append(["best", f"{best['monitor']} {cell(best.get('value'))} at epoch {best.get('epoch')}, step "
                             f"{best.get('step')}"])
    timing = manifest.get("training_time") or {}
    if timing.get("seconds") is not None:
        rows.append(["training time", f"{timing['seconds']:.1f} s, {timing.get('samples')} rows, "
                                      f"{timing.get('samples_per_second')} rows/s"])
    section.table(["", ""], rows)
    if metrics:
        names = sorted({name for values in metrics.values() for name in values})
        section.table(["metric", *metrics], [[name, *(values.get(name) for values in metrics.values())]
                                             for name in names])
    elif evaluations:
        last = evaluations[-1]
        section.text(f"No metrics.json (the run did not finish); its last evaluation, at step {last.get('step')}:")
        section.table(["metric", "value"], [[k, v] for k, v in last.items() if "." in k])


def learning_curves(section: Section, train: list[dict[str, Any]], evaluations: list[dict[str, Any]]) -> None:
    """Training and validation loss, the other validation metrics, and the learning rate, by optimizer step."""

    def series(records: list[dict[str, Any]], key: str) -> tuple[list[Any], list[Any]]:
        return [r.get("step") for r in records if key in r], [r[key] for r in records if key in r]

    loss = charts.Panel("Loss", xlabel="step", ylabel="loss")
    if any("loss" in r for r in train):
        loss.line(*series(train, "loss"), label="training", colour=charts.BLUE, width=1)
    evaluated = {key for r in evaluations for key in r if "." in key}
    for key in sorted(k for k in evaluated if k.endswith(".loss")):
        loss.line(*series(evaluations, key), label=key.split(".")[0], colour=charts.ORANGE, markers=True)
    metrics = charts.Panel("Validation metrics", xlabel="step", ylabel="value")
    others = sorted(k for k in evaluated if not k.endswith(".loss"))
    for i, key in enumerate(others[:10]):
        metrics.line(*series(evaluations, key), label=key, colour=charts.COLOURS[i], markers=True)
    if not others:
        metrics.note("no evaluations")
    lr = charts.Panel("Learning rate", xlabel="step", ylabel="learning rate")
    if any("lr" in r for r in train):
        lr.line(*series(train, "lr"), colour=charts.GREEN)
    section.svg("learning_curves", "Loss, validation metrics and learning rate by optimizer step.",
                charts.figure([loss, metrics, lr], width=1320, height=400))


def manifest_section(section: Section, manifest: dict[str, Any]) -> None:
    if not manifest:
        section.text("No manifest.json.")
        return
    section.text("What ran: versions, seed, data fingerprints and plugins (manifest.json).")
    rows = [[k, v] for k, v in flatten({k: v for k, v in manifest.items()
                                        if k not in ("plugins", "augmentation")}).items()]
    rows += [[f"plugin {p.get('name')}", f"{p.get('version')} ({p.get('source')})"]
             for p in manifest.get("plugins", []) if isinstance(p, dict)]
    section.table(["key", "value"], rows)


SHOWN_PAIRS = 3  # original/augmented pairs shown per augmentation


def augmentation_section(section: Section, summaries: list[Any]) -> None:
    """What each augmentation did to the training rows (the manifest's counts) and a few of the rows it made beside
    the rows they came from: numbers alone do not show whether a synonym kept the sense or a tag its word."""
    records = [s for s in summaries if isinstance(s, dict)]
    section.text("What each augmentation did to the training rows, in the order they ran (manifest.json): rows in, "
                 "rows out, and rows produced (new rows and changed copies).")
    if any(r.get("streamed") for r in records):
        section.text("The training split is streamed: the counts cover the rows read when the run was set up, not "
                     "the whole stream.")
    section.table(["augmentation", "rows in", "rows out", "produced"],
                  [[r.get("name"), r.get("rows_in"), r.get("rows_out"), r.get("produced")] for r in records])
    for record in records:
        pairs = [e for e in record.get("examples") or [] if isinstance(e, dict)][:SHOWN_PAIRS]
        if pairs:
            section.text(f"{record.get('name')}: {len(pairs)} row(s) it made, beside the row each came from.")
            section.table(["original", "augmented"],
                          [[shown_row(p.get("original")), shown_row(p.get("augmented"))] for p in pairs])


def shown_row(fields: Any) -> str:
    """A row of an example as a line: its text (and pair), then its label; words with one tag each as word/TAG."""
    if not isinstance(fields, dict):
        return ""
    text, label = fields.get("text"), fields.get("label")
    if isinstance(text, list) and isinstance(label, list) and len(text) == len(label):
        return " ".join(f"{word}/{tag}" for word, tag in zip(text, label))
    line = " ".join(map(str, text)) if isinstance(text, list) else cell(text)
    if fields.get("text_pair") is not None:
        line += f" ‖ {cell(fields['text_pair'])}"
    return line + (f"  [{cell(label)}]" if label is not None else "")
