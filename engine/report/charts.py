"""Charts drawn straight to SVG, for the report's built-in figures: lines, scatters, grouped horizontal bars and
heatmaps, with axes, ticks, legends and titles.

Every run ends with its report; drawing these with matplotlib would cost about two seconds of each run (a second of its
import alone), more than the rest of the report together. SVG text needs no import, stays sharp at any zoom,
opens in any browser and is a few kilobytes. A plugin's own figures use matplotlib (``Section.figure``).

    panel = Panel("Loss", xlabel="step", ylabel="loss")
    panel.line(steps, losses, label="training")
    section.svg("learning_curves", "Loss by step.", figure([panel], width=600, height=400))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10, the colours of the plugins' own (matplotlib) figures
BLUE, ORANGE, GREEN, RED, PURPLE = COLOURS[:5]
FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
FONT_SIZE = 12
CHAR_WIDTH = 0.6  # a character's estimated width, in font sizes: SVG text cannot be measured before it is shown
MAX_LINE_POINTS = 4000  # a longer line is thinned evenly (its first and last points kept)
MAX_SCATTER_POINTS = 5000  # a larger scatter shows an even sample, and its legend says so
GRID, FRAME, MUTED = "#e6e6e6", "#b0b0b0", "#555"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _points(xs: Sequence[Any], ys: Sequence[Any]) -> list[tuple[float, float]]:
    """The (x, y) pairs where both are finite numbers: a NaN loss or a missing value is left out, not drawn at 0."""
    pairs = [(_number(x), _number(y)) for x, y in zip(xs, ys)]
    return [(x, y) for x, y in pairs if x is not None and y is not None]


def _thin(points: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    if len(points) <= most:
        return points
    stride = (len(points) - 1) / (most - 1)
    return [points[round(i * stride)] for i in range(most)]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values within [low, high]: the finest step of 1, 2, 2.5 or 5 times a power of ten that gives at
    most ``count`` + 2 ticks (at least 3 then, as the next coarser step is at most twice as long)."""
    if not high > low:
        return [low]
    magnitude = 10 ** math.floor(math.log10((high - low) / count))

    def first_last(step: float) -> tuple[int, int]:
        return math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)

    steps = [m * magnitude * scale for scale in (0.1, 1, 10) for m in (1, 2, 2.5, 5)] + [10 * magnitude * 10]
    step = next(s for s in steps if first_last(s)[1] - first_last(s)[0] + 1 <= count + 2)
    first, last = first_last(step)
    return [0.0 if i == 0 else i * step for i in range(first, last + 1)]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks' texts, with as many decimals as the step between them needs (no float noise such as
    0.30000004); tiny or huge ticks in powers of ten (8e-5, 2.5e6)."""
    if not ticks:
        return []
    biggest = max(abs(t) for t in ticks)
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else biggest
    if biggest < 1e-3 or biggest >= 1e6:  # significant digits enough to tell the ticks apart
        digits = max(1, math.ceil(math.log10(biggest / step) - 1e-9) + 1) if biggest else 1

        def text(value: float) -> str:
            mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
            if "." in mantissa:
                mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
    else:
        decimals = 0
        while decimals < 12 and abs(round(step, decimals) - step) > step * 1e-6:
            decimals += 1

        def text(value: float) -> str:
            return f"{value:.{decimals}f}"
    return ["0" if t == 0 else text(t) for t in ticks]


def _range(values: list[float], fixed: tuple[float, float] | None, pad: float = 0.05,
           least: float = 0.0) -> tuple[float, float]:
    """The axis range: ``fixed``, or the values' with a margin of ``pad`` on each side; a span under ``least`` times
    the largest magnitude is widened to that, so that differences in the 5th decimal do not fill the axis."""
    if fixed is not None:
        return fixed
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    span = max(high - low, least * max(abs(low), abs(high)))
    if span == 0:
        return low - 0.5, high + 0.5
    middle = (low + high) / 2
    return middle - span * (0.5 + pad), middle + span * (0.5 + pad)


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: int = FONT_SIZE, weight: str = "normal",
          colour: str = "#222", angle: float = 0, baseline: str = "auto") -> str:
    transform = f' transform="rotate({angle:g} {x:.1f} {y:.1f})"' if angle else ""
    bold = ' font-weight="bold"' if weight != "normal" else ""
    middle = f' dominant-baseline="{baseline}"' if baseline != "auto" else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}"{bold}'
            f'{middle}{transform}>{escape(text)}</text>')


def _width(text: str, size: int = FONT_SIZE) -> float:
    return len(text) * size * CHAR_WIDTH


@dataclass
class Mark:
    kind: str  # line, scatter, hline, bars
    label: str | None
    colour: str
    points: list[tuple[float, float]] = field(default_factory=list)
    markers: bool = False
    width: float = 1.5
    radius: float = 2.5
    opacity: float = 1.0
    values: list[float | None] = field(default_factory=list)  # bars: one per category


class Panel:
    """One set of axes: a title, axis labels and what is drawn on them, in the order it was added."""

    def __init__(self, title: str = "", *, xlabel: str = "", ylabel: str = "",
                 xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None) -> None:
        self.title, self.xlabel, self.ylabel, self.xlim, self.ylim = title, xlabel, ylabel, xlim, ylim
        self.marks: list[Mark] = []
        self.categories: list[str] = []
        self.message = ""

    def _colour(self, colour: str | None) -> str:
        return colour or COLOURS[sum(m.kind != "hline" for m in self.marks) % len(COLOURS)]

    def line(self, xs: Sequence[Any], ys: Sequence[Any], *, label: str | None = None, colour: str | None = None,
             markers: bool = False, width: float = 1.5) -> Panel:
        """A line through the points in order; ``markers`` puts a dot on each (for a few points, such as
        evaluations)."""
        points = _thin(_points(xs, ys), MAX_LINE_POINTS)
        self.marks.append(Mark("line", label, self._colour(colour), points, markers=markers, width=width))
        return self

    def scatter(self, xs: Sequence[Any], ys: Sequence[Any], *, label: str | None = None, colour: str | None = None,
                radius: float = 2.5, opacity: float = 0.5) -> Panel:
        """A dot at each point; over MAX_SCATTER_POINTS, an even sample, which the legend counts."""
        points = _points(xs, ys)
        if len(points) > MAX_SCATTER_POINTS:
            shown = _thin(points, MAX_SCATTER_POINTS)
            label = f"{label or 'points'} ({len(shown):,} of {len(points):,} shown)"
            points = shown
        self.marks.append(Mark("scatter", label, self._colour(colour), points, radius=radius, opacity=opacity))
        return self

    def hline(self, y: float, *, label: str | None = None, colour: str = RED) -> Panel:
        """A horizontal line across the whole panel."""
        self.marks.append(Mark("hline", label, colour, [(0.0, y)], width=1.0))
        return self

    def barh(self, categories: Sequence[str], groups: Sequence[tuple[str, Sequence[Any]]],
             colours: Sequence[str] = COLOURS) -> Panel:
        """Horizontal bars: one row per category (the first on top), one bar per group in each row."""
        self.categories = list(categories)
        for (label, values), colour in zip(groups, colours):
            self.marks.append(Mark("bars", label, colour, values=[_number(v) for v in values]))
        return self

    def note(self, text: str) -> Panel:
        """Text in the middle of the panel (such as why it is empty)."""
        self.message = text
        return self

    # --- drawing -------------------------------------------------------------------------------------------------

    def _bounds(self) -> tuple[tuple[float, float], tuple[float, float]]:
        if self.categories:
            values = [v for m in self.marks for v in m.values if v is not None]
            return _range([0.0, *values], self.xlim, pad=0.02), (0.0, float(len(self.categories)))
        xs = [x for m in self.marks if m.kind != "hline" for x, _ in m.points]
        ys = [y for m in self.marks for _, y in m.points]
        return _range(xs, self.xlim), _range(ys, self.ylim, least=0.01)

    def _integer_x(self) -> bool:
        xs = [x for m in self.marks if m.kind in ("line", "scatter") for x, _ in m.points]
        return bool(xs) and not self.categories and all(x == int(x) for x in xs)

    def legend_entries(self) -> list[Mark]:
        return [m for m in self.marks if m.label]

    def draw(self, left: float, top: float, width: float, height: float, *, key: str = "p",
             legend_outside: bool = False) -> list[str]:
        """SVG elements for this panel in the box (left, top, width, height), axes labels and title included;
        ``key`` names its clip path, unique within the document."""
        (x0, x1), (y0, y1) = self._bounds()
        xticks = nice_ticks(x0, x1)
        if self._integer_x():  # optimizer steps, trials: no tick between two whole numbers
            xticks = [t for t in xticks if t == int(t)] or [float(round((x0 + x1) / 2))]
        yticks = [] if self.categories else nice_ticks(y0, y1)
        ylabels = self.categories if self.categories else tick_labels(yticks)
        entries = self.legend_entries()
        legend_width = max((_width(m.label or "") for m in entries), default=0) + 34
        left_margin = (22 if self.ylabel else 6) + max((_width(t) for t in ylabels), default=0) + 8
        right_margin = legend_width + 8 if legend_outside and entries else 10
        plot_y = top + (28 if self.title else 10)
        plot = _Plot(left + left_margin, plot_y, max(width - left_margin - right_margin, 20),
                     max(height - (plot_y - top) - (42 if self.xlabel else 24), 20), x0, x1, y0, y1)
        out = [*self._grid(plot, xticks, yticks, ylabels),
               f'<clipPath id="clip-{key}"><rect x="{plot.x:.1f}" y="{plot.y:.1f}" width="{plot.w:.1f}" '
               f'height="{plot.h:.1f}"/></clipPath><g clip-path="url(#clip-{key})">',
               *self._bars(plot), *self._marks(plot), "</g>", *self._texts(plot, left, top)]
        if entries:
            box_h = 20 * len(entries) + 6
            if legend_outside:
                lx, ly = plot.x + plot.w + 10, plot.y
            else:
                lx, ly = self._legend_corner(plot, legend_width, box_h)
            out.extend(_legend(entries, lx, ly, legend_width, box_h))
        return out

    def _grid(self, plot: _Plot, xticks: list[float], yticks: list[float], ylabels: list[str]) -> list[str]:
        """The plot area's frame, its grid lines and the ticks' texts (the categories' names, for bars)."""
        out = [f'<rect x="{plot.x:.1f}" y="{plot.y:.1f}" width="{plot.w:.1f}" height="{plot.h:.1f}" fill="white" '
               f'stroke="{FRAME}"/>']
        for t, text in zip(xticks, tick_labels(xticks)):
            x = plot.sx(t)
            out.append(f'<line x1="{x:.1f}" y1="{plot.y:.1f}" x2="{x:.1f}" y2="{plot.y + plot.h:.1f}" '
                       f'stroke="{GRID}"/>')
            out.append(_text(x, plot.y + plot.h + 15, text, colour=MUTED))
        for i, name in enumerate(self.categories):
            out.append(_text(plot.x - 6, plot.sy(len(self.categories) - i - 0.5), name, anchor="end", colour=MUTED,
                             baseline="central"))
        for t, text in zip(yticks, ylabels):
            y = plot.sy(t)
            out.append(f'<line x1="{plot.x:.1f}" y1="{y:.1f}" x2="{plot.x + plot.w:.1f}" y2="{y:.1f}" '
                       f'stroke="{GRID}"/>')
            out.append(_text(plot.x - 6, y, text, anchor="end", colour=MUTED, baseline="central"))
        return out

    def _bars(self, plot: _Plot) -> list[str]:
        """Each category's row of bars, one band per group, the first group on top."""
        out = []
        bars = [m for m in self.marks if m.kind == "bars"]
        for k, mark in enumerate(bars):
            band = 0.8 / len(bars)
            for i, value in enumerate(mark.values):
                if value is not None:
                    y = plot.sy(len(self.categories) - i - 0.1 - k * band)
                    out.append(f'<rect x="{plot.sx(min(0.0, value)):.1f}" y="{y:.1f}" '
                               f'width="{abs(plot.sx(value) - plot.sx(0)):.1f}"'
                               f' height="{band * plot.h / len(self.categories):.1f}" fill="{mark.colour}"/>')
        return out

    def _marks(self, plot: _Plot) -> list[str]:
        """The lines, scatters and horizontal lines, in the order they were added."""
        out = []
        sx, sy = plot.sx, plot.sy
        for mark in self.marks:
            if mark.kind == "line" and mark.points:
                path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in mark.points)
                out.append(f'<polyline points="{path}" fill="none" stroke="{mark.colour}" '
                           f'stroke-width="{mark.width}" stroke-linejoin="round"/>')
                if mark.markers or len(mark.points) == 1:
                    out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{mark.colour}"/>'
                               for x, y in mark.points)
            elif mark.kind == "scatter":
                out.append(f'<g fill="{mark.colour}" fill-opacity="{mark.opacity}">')
                out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{mark.radius}"/>' for x, y in mark.points)
                out.append("</g>")
            elif mark.kind == "hline":
                y = sy(mark.points[0][1])
                out.append(f'<line x1="{plot.x:.1f}" y1="{y:.1f}" x2="{plot.x + plot.w:.1f}" y2="{y:.1f}" '
                           f'stroke="{mark.colour}" stroke-width="{mark.width}"/>')
        return out

    def _texts(self, plot: _Plot, left: float, top: float) -> list[str]:
        """The note in the middle, the title above, the axis labels below and to the left."""
        out = []
        middle = plot.x + plot.w / 2
        if self.message:
            out.append(_text(middle, plot.y + plot.h / 2, self.message, colour=MUTED, baseline="central"))
        if self.title:
            out.append(_text(middle, top + 17, self.title, size=13, weight="bold"))
        if self.xlabel:
            out.append(_text(middle, plot.y + plot.h + 34, self.xlabel))
        if self.ylabel:
            out.append(_text(left + 12, plot.y + plot.h / 2, self.ylabel, angle=-90))
        return out

    def _legend_corner(self, plot: _Plot, box_w: float, box_h: float) -> tuple[float, float]:
        """The inside corner whose legend box would cover the fewest points (top right when they tie)."""
        right, bottom = plot.x + plot.w - box_w - 6, plot.y + plot.h - box_h - 6
        corners = [(right, plot.y + 6), (plot.x + 6, plot.y + 6), (right, bottom), (plot.x + 6, bottom)]
        screen = [(plot.sx(x), plot.sy(y)) for m in self.marks if m.kind in ("line", "scatter") for x, y in m.points]
        return min(corners, key=lambda c: sum(c[0] <= x <= c[0] + box_w and c[1] <= y <= c[1] + box_h
                                              for x, y in screen))


@dataclass
class _Plot:
    """A panel's plot area in pixels (x, y, w, h) and the data ranges it shows (x0..x1, y0..y1)."""

    x: float
    y: float
    w: float
    h: float
    x0: float
    x1: float
    y0: float
    y1: float

    def sx(self, x: float) -> float:
        return self.x + (x - self.x0) / (self.x1 - self.x0) * self.w

    def sy(self, y: float) -> float:
        return self.y + self.h - (y - self.y0) / (self.y1 - self.y0) * self.h


def _legend(entries: Sequence[Mark], left: float, top: float, width: float, height: float) -> list[str]:
    """A legend box at (left, top): each entry's swatch (a line, a dot or a bar, as it is drawn) and its label."""
    out = [f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:g}" fill="white" '
           f'fill-opacity="0.85" stroke="{FRAME}" rx="3"/>']
    for i, mark in enumerate(entries):
        y = top + 14 + 20 * i
        if mark.kind == "bars":
            out.append(f'<rect x="{left + 8:.1f}" y="{y - 5:.1f}" width="16" height="10" fill="{mark.colour}"/>')
        elif mark.kind == "scatter" or mark.markers:
            out.append(f'<circle cx="{left + 16:.1f}" cy="{y:.1f}" r="3.5" fill="{mark.colour}"/>')
        if mark.kind in ("line", "hline"):
            out.append(f'<line x1="{left + 6:.1f}" y1="{y:.1f}" x2="{left + 26:.1f}" y2="{y:.1f}" '
                       f'stroke="{mark.colour}" stroke-width="2"/>')
        out.append(_text(left + 30, y, mark.label or "", anchor="start", baseline="central"))
    return out


def figure(panels: Sequence[Panel], *, width: int = 640, height: int = 420, legend_outside: bool = False) -> str:
    """An SVG document of ``panels`` side by side, ``width`` x ``height`` pixels in all."""
    each = width / max(len(panels), 1)
    body: list[str] = []
    for i, panel in enumerate(panels):
        body.extend(panel.draw(i * each + 4, 4, each - 8, height - 8, key=str(i), legend_outside=legend_outside))
    return _document(width, height, body)


def _document(width: float, height: float, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{escape(FONT)}" font-size="{FONT_SIZE}">\n'
            f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) + "\n</svg>\n")


BLUES = ((0.0, (247, 251, 255)), (0.25, (198, 219, 239)), (0.5, (107, 174, 214)), (0.75, (33, 113, 181)),
         (1.0, (8, 48, 107)))  # matplotlib's "Blues", sampled


def blue(share: float) -> str:
    """The colour of ``share`` (0 to 1) on a white-to-dark-blue scale."""
    share = min(max(share, 0.0), 1.0)
    for (a, low), (b, high) in itertools.pairwise(BLUES):
        if share <= b:
            t = (share - a) / (b - a)
            return "#" + "".join(f"{round(lo + (hi - lo) * t):02x}" for lo, hi in zip(low, high))
    return "#08306b"


def heatmap(shares: Sequence[Sequence[float]], labels: Sequence[str], *, counts: Sequence[Sequence[int]] | None = None,
            title: str = "", xlabel: str = "", ylabel: str = "", scale_label: str = "") -> str:
    """A square matrix of cells coloured by ``shares`` (0 to 1), rows and columns named by ``labels``, with a colour
    scale; ``counts`` are written in the cells."""
    n = len(labels)
    cell = max(18.0, min(110.0, 440 / max(n, 1)))
    longest = max((_width(label) for label in labels), default=0)
    slanted = n > 4
    side = cell * n
    left = max(28 + longest + 8, (_width(title, 13) - side) / 2 + 10)  # room for the row labels and the title
    top = 32
    bottom = (longest * 0.72 + 20 if slanted else 24) + 24
    width, height = left + side + 110, top + side + bottom
    out = []
    for i in range(n):
        for j in range(n):
            share = shares[i][j]
            x, y = left + j * cell, top + i * cell
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" fill="{blue(share)}"/>')
            if counts is not None and n <= 20:
                out.append(_text(x + cell / 2, y + cell / 2, str(counts[i][j]), size=10 if cell < 30 else 11,
                                 colour="white" if share > 0.6 else "black", baseline="central"))
    out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{side:.1f}" height="{side:.1f}" fill="none" '
               f'stroke="{FRAME}"/>')
    for i, label in enumerate(labels):
        out.append(_text(left - 6, top + (i + 0.5) * cell, label, anchor="end", colour=MUTED, baseline="central"))
        x, y = left + (i + 0.5) * cell, top + side + 14
        out.append(_text(x + 4, y, label, anchor="end", colour=MUTED, angle=-45) if slanted
                   else _text(x, y, label, colour=MUTED))
    if title:
        out.append(_text(left + side / 2, 20, title, size=13, weight="bold"))
    if xlabel:
        out.append(_text(left + side / 2, height - 10, xlabel))
    if ylabel:
        out.append(_text(14, top + side / 2, ylabel, angle=-90))
    # the colour scale: a gradient bar with ticks at 0, 0.25 ... 1
    bar_x, bar_h = left + side + 18, side
    stops = "".join(f'<stop offset="{a}" stop-color="{blue(a)}"/>' for a, _ in BLUES)
    out.append(f'<defs><linearGradient id="scale" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient></defs>')
    out.append(f'<rect x="{bar_x:.1f}" y="{top:.1f}" width="14" height="{bar_h:.1f}" fill="url(#scale)" '
               f'stroke="{FRAME}"/>')
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(_text(bar_x + 19, top + bar_h * (1 - t), f"{t:g}", anchor="start", size=10, colour=MUTED,
                         baseline="central"))
    if scale_label:
        out.append(_text(bar_x + 52, top + bar_h / 2, scale_label, size=10, colour=MUTED, angle=-90))
    return _document(width, height, out)
