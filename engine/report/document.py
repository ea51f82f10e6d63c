"""A report document: titled sections of paragraphs, tables and images, written as index.html with its images
beside it. The run report (``engine.report.run_report``) and a task's own sections (``Task.report``) are made of it;
``Section.svg`` takes charts drawn by ``engine.report.charts``, ``Section.figure`` a matplotlib figure saved as PNG.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import atomic_path, write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
        """An SVG image (a whole ``<svg>`` document, such as ``engine.report.charts`` draws), saved as ``name``.svg
        when the report is written. Names are made unique within the report."""
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
    """A report's sections (a run's, a search's, a comparison's); ``write`` saves the figures and index.html into
    ``directory``."""

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
                    with atomic_path(self.directory / file) as tmp:
                        figure.savefig(tmp, dpi=110)
                elif kind == "image":
                    file, _, markup = value
                    write_text(self.directory / file, markup)
        for stale in [*self.directory.glob("*.png"), *self.directory.glob("*.svg")]:
            if stale.name not in self._names:
                stale.unlink()
        index = self.directory / "index.html"
        write_text(index, self.html())
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
