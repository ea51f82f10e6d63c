"""The run report: RUN_DIR/report/index.html, with its images beside it, made from what the run directory holds.

Written when a run ends (``training.report``) and again by ``engine report RUN_DIR``, also for a run that was
killed: the learning curves come from history.jsonl, the task's sections from predictions/SPLIT.jsonl (the best
model's, saved at each improvement), the tables from task.json and manifest.json. A task adds its own sections with
``Task.report`` (see docs/plugins.md). The built-in charts are SVG drawn by engine.charts (no matplotlib import at the
end of every run); ``Section.figure`` gives a plugin a matplotlib figure, saved as PNG, drawn without a display.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import charts
from engine.errors import RunDirError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_DIR = "report"


class Section:
    """A titled part of the report: paragraphs, tables and figures, shown in the order they are added."""

    def __init__(self, report: Report, title: str) -> None:
        self.report, self.title = report, title
        self.parts: list[tuple[str, Any]] = []

    def text(self, text: str) -> Section:
        """A paragraph (plain text)."""
        self.parts.append(("text", text))
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Section:
        """A table; floats show with 4 decimals."""
        self.parts.append(("table", ([str(h) for h in header], [[cell(v) for v in row] for row in rows])))
        return self

    def svg(self, name: str, caption: str, markup: str) -> Section:
        """An SVG image (a whole ``<svg>`` document, such as engine.charts draws), saved as ``name``.svg when the
        report is written. Names are made unique within the report."""
        self.parts.append(("image", (self.report.unique_name(name, ".svg"), caption, markup)))
        return self

    def figure(self, name: str, caption: str, size: tuple[float, float] = (6.4, 4.4)) -> Figure:
        """A new matplotlib figure (``size`` in inches), saved as ``name``.png when the report is written: draw on it
        (``fig.subplots()``); give its axes labels and a title. Names are made unique within the report."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=size, layout="constrained")
        file = self.report.unique_name(name)
        self.parts.append(("figure", (file, caption, figure)))
        return figure


class Report:
    """The sections of one run's report; ``write`` saves the figures and index.html into ``directory``."""

    def __init__(self, directory: Path, title: str) -> None:
        self.directory, self.title = directory, title
        self.sections: list[Section] = []
        self._names: set[str] = set()

    def section(self, title: str) -> Section:
        """A new section at the end of the report."""
        section = Section(self, title)
        self.sections.append(section)
        return section

    def unique_name(self, name: str, suffix: str = ".png") -> str:
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "figure"
        file, n = f"{stem}{suffix}", 1
        while file in self._names:
            n += 1
            file = f"{stem}-{n}{suffix}"
        self._names.add(file)
        return file

    def write(self) -> Path:
        """Figures first, then index.html, each replacing the old whole; older images this report no longer has go."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for section in self.sections:
            for kind, value in section.parts:
                if kind == "figure":
                    file, _, figure = value
                    tmp = self.directory / f".{file}.tmp.png"
                    figure.savefig(tmp, dpi=110)
                    tmp.replace(self.directory / file)
                elif kind == "image":
                    file, _, markup = value
                    tmp = self.directory / f".{file}.tmp"
                    tmp.write_text(markup, encoding="utf-8")
                    tmp.replace(self.directory / file)
        for stale in [*self.directory.glob("*.png"), *self.directory.glob("*.svg")]:
            if stale.name not in self._names:
                stale.unlink()
        index = self.directory / "index.html"
        tmp = self.directory / ".index.html.tmp"
        tmp.write_text(self.html(), encoding="utf-8")
        tmp.replace(index)
        return index

    def html(self) -> str:
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        if len(self.sections) > 2:
            links = "".join(f'<li><a href="#s{i}">{esc(s.title)}</a></li>' for i, s in enumerate(self.sections))
            body.append(f"<nav><ul>{links}</ul></nav>")
        for i, section in enumerate(self.sections):
            body.append(f'<section id="s{i}"><h2>{esc(section.title)}</h2>')
            for kind, value in section.parts:
                if kind == "text":
                    body.append(f"<p>{esc(value)}</p>")
                elif kind == "table":
                    header, rows = value
                    head = "".join(f"<th>{esc(h)}</th>" for h in header)
                    cells = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
                    body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
                else:
                    file, caption, _ = value
                    body.append(f'<figure><img src="{esc(file)}" alt="{esc(caption)}">'
                                f"<figcaption>{esc(caption)}</figcaption></figure>")
            body.append("</section>")
        return PAGE.format(title=esc(self.title), body="\n".join(body))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td {{ font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
figure {{ margin: 1em 0; }}
figcaption {{ color: #555; font-size: 0.9em; }}
nav ul {{ columns: 2; }}
</style></head>
<body>
{body}
</body></html>
"""


def cell(value: Any) -> str:
    if isinstance(value, float):  # 4 decimals; small values (learning rates, epsilons) in significant digits
        return f"{value:.4f}" if not math.isfinite(value) or value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


# --- reading a run directory -------------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file; a last line cut short by a kill is skipped."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
    except OSError:
        return


def read_history(run_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, evaluation records) of history.jsonl."""
    train: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    for record in read_jsonl(run_dir / "history.jsonl"):
        (evaluations if record.get("event") == "evaluate" else train).append(record)
    return train, evaluations


def check_run_dir(run_dir: Path) -> dict[str, Any]:
    """The run's task file; a RunDirError when ``run_dir`` is not a run directory."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    task = read_json(run_dir / "task.json")
    if not isinstance(task, dict):
        raise RunDirError(f"{run_dir}: not a run directory (expected {run_dir / 'task.json'}, written when a run "
                          "starts)")
    return task


# --- the report ----------------------------------------------------------------------------------------------------


def write_report(run_dir: Path, task: Any = None, *, note: str | None = None) -> Path:
    """Make RUN_DIR/report/ from the run directory; ``task`` (the run's task object) adds its sections. Returns the
    path of index.html."""
    config = check_run_dir(run_dir)
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
    splits = [s for s in ("validation", "test") if (predictions_dir / f"{s}.jsonl").is_file()]
    method = getattr(task, "report", None)
    if note:
        report.section("Task sections").text(note)
    elif splits and method is not None:
        for split in splits:
            records = list(read_jsonl(predictions_dir / f"{split}.jsonl"))
            which = "the best model's" if split == "validation" else "the saved model's"
            method(report, f"{split} ({which} predictions, {len(records):,} rows)",
                   [r.get("prediction") for r in records], [r.get("reference") for r in records])
    elif not splits:
        report.section("Predictions").text("No predictions/*.jsonl: the run had not evaluated yet when it stopped, or "
                                           "it has no validation or test data.")

    settings = report.section("Settings")
    settings.text("The task file as run, every default filled in (task.json), as the --set keys that reproduce it.")
    settings.table(["key", "value"], sorted(flatten(config).items()))
    manifest_section(report.section("Manifest"), manifest)
    return report.write()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


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
    rows = [[k, v] for k, v in flatten({k: v for k, v in manifest.items() if k != "plugins"}).items()]
    rows += [[f"plugin {p.get('name')}", f"{p.get('version')} ({p.get('source')})"]
             for p in manifest.get("plugins", []) if isinstance(p, dict)]
    section.table(["key", "value"], rows)


def task_of_run(run_dir: Path, manager: Any, *, trust_plugins: bool = False) -> tuple[Any, str | None]:
    """The run's task object, built by the plugin that declares it, for its report sections: (task, None), or
    (None, why not). Task-file modules load from where the run recorded them only with ``trust_plugins``."""
    from engine.errors import EngineError
    from engine.inference import _choice, _load_task_file_plugins, _trained_with

    config = check_run_dir(run_dir)
    trained_with = _trained_with(run_dir / "model")  # reads RUN_DIR/manifest.json
    plugins = {name: str(info.get("version")) for name, info in trained_with.items()}
    try:
        untrusted = _load_task_file_plugins(manager, plugins, trained_with, trust_plugins)
        task = _choice(manager, "task", config.get("task"), "task.json task", plugins, trained_with, untrusted).build()
    except EngineError as exc:
        return None, f"The task's own sections are left out: {exc}"
    meta = read_json(run_dir / "model" / "engine.json")
    if isinstance(meta, dict) and meta.get("task_state"):
        task.load_state_dict(meta["task_state"])
    return task, None
