"""engine.charts, the report's SVG charts: ticks, where points land, what is left out, and documents that parse."""

import itertools
import math
import random
import re
from xml.etree import ElementTree

import pytest

from engine.report.charts import (
    MAX_LINE_POINTS,
    MAX_SCATTER_POINTS,
    Panel,
    blue,
    figure,
    heatmap,
    nice_ticks,
    tick_labels,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup):
    root = ElementTree.fromstring(markup)
    assert root.tag == f"{SVG}svg"
    return root


def polylines(root):
    return [[tuple(map(float, p.split(","))) for p in line.get("points").split()]
            for line in root.iter(f"{SVG}polyline")]


def plot_area(root):
    frame = root.find(f"{SVG}rect[@stroke]")  # the first framed rectangle: the plot area
    x, y, w, h = (float(frame.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def test_ticks_are_round_steps_inside_the_range():
    rng = random.Random(0)
    for _ in range(2000):
        low = rng.uniform(-1e3, 1e3) * 10 ** rng.randint(-6, 3)
        high = low + max(rng.uniform(1e-3, 1e3) * 10 ** rng.randint(-6, 3), 1e-4 * abs(low))
        ticks = nice_ticks(low, high)
        assert 3 <= len(ticks) <= 7, (low, high, ticks)
        step = ticks[1] - ticks[0]
        assert all(low - 1e-9 * step <= t <= high + 1e-9 * step for t in ticks)
        assert all(math.isclose(b - a, step, rel_tol=1e-6, abs_tol=1e-12 * abs(high))
                   for a, b in itertools.pairwise(ticks))
        labels = tick_labels(ticks)
        assert len(set(labels)) == len(labels), (ticks, labels)  # each tick tells its value
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10)), step
    assert nice_ticks(3.0, 3.0) == [3.0]


def test_tick_labels_carry_no_float_noise():
    ticks = nice_ticks(0.0, 0.5)
    assert ticks[3] != 0.3  # 3 * 0.1
    assert tick_labels(ticks) == ["0", "0.1", "0.2", "0.3", "0.4", "0.5"]
    ticks = nice_ticks(0.0, 5e-5)
    assert tick_labels(ticks) == ["0", "1e-5", "2e-5", "3e-5", "4e-5", "5e-5"]
    ticks = nice_ticks(0.0, 1e-4)
    assert tick_labels(ticks) == ["0", "2e-5", "4e-5", "6e-5", "8e-5", "1e-4"]
    ticks = nice_ticks(0.92248, 0.92251)
    assert tick_labels(ticks) == ["0.922480", "0.922485", "0.922490", "0.922495", "0.922500",
                                                     "0.922505", "0.922510"]
    ticks = nice_ticks(0, 1000)
    assert tick_labels(ticks)[1] == "200"
    ticks = nice_ticks(2e6, 3e6)
    assert tick_labels(ticks) == ["2e6", "2.2e6", "2.4e6", "2.6e6", "2.8e6", "3e6"]
    ticks = nice_ticks(0.6, 0.9)
    assert tick_labels(ticks) == ["0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90"]


def test_points_land_where_their_values_say():
    panel = Panel("t", xlabel="x", ylabel="y").line([0, 5, 10], [0, 5, 10], label="a")
    root = parse(figure([panel], width=500, height=400))
    (line,) = polylines(root)
    left, top, right, bottom = plot_area(root)
    assert all(left <= x <= right and top <= y <= bottom for x, y in line)
    (x0, y0), (x1, y1), (x2, y2) = line
    assert x0 < x1 < x2 and y0 > y1 > y2  # y grows upwards on the chart, downwards in SVG
    assert x1 - x0 == pytest.approx(x2 - x1, abs=0.11) and y0 - y1 == pytest.approx(y1 - y2, abs=0.11)  # linear
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"t", "x", "y", "a", "0", "10"} <= labels


def test_differences_far_below_the_values_do_not_fill_the_axis():
    flat = Panel().line([1, 2], [0.9225, 0.92249])  # a metric that did not move: 1e-5 of 0.92
    root = parse(figure([flat]))
    (line,) = polylines(root)
    _, top, _, bottom = plot_area(root)
    assert abs(line[0][1] - line[1][1]) < 0.01 * (bottom - top)
    ticks = [float(t.text) for t in root.iter(f"{SVG}text") if re.fullmatch(r"0\.\d+", t.text)]
    assert max(ticks) - min(ticks) >= 0.005


def test_missing_and_non_finite_values_are_left_out():
    panel = Panel().line([1, 2, 3, 4, 5], [1.0, math.nan, 3.0, None, math.inf])
    (line,) = polylines(parse(figure([panel])))
    assert len(line) == 2


def test_long_lines_are_thinned_and_large_scatters_sampled_and_said_so():
    n = 3 * MAX_LINE_POINTS
    panel = Panel().line(range(n), [i % 7 for i in range(n)])
    (line,) = polylines(parse(figure([panel])))
    full = polylines(parse(figure([Panel().line([0, 1, n - 1], [0, 6, (n - 1) % 7])])))[0]
    assert len(line) == MAX_LINE_POINTS and line[0] == full[0] and line[-1] == full[-1]  # first and last kept

    k = MAX_SCATTER_POINTS + 1000
    root = parse(figure([Panel().scatter(range(k), range(k), label="rows")]))
    assert sum(c.get("r") == "2.5" for c in root.iter(f"{SVG}circle")) == MAX_SCATTER_POINTS  # the legend's is 3.5
    assert f"rows ({MAX_SCATTER_POINTS:,} of {k:,} shown)" in {t.text for t in root.iter(f"{SVG}text")}


def test_whole_number_axes_have_no_ticks_between_whole_numbers():
    root = parse(figure([Panel().line([1], [0.5], markers=True)]))
    numbers = [t.text for t in root.iter(f"{SVG}text") if re.fullmatch(r"-?[\d.]+", t.text)]
    assert "1" in numbers and "0.98" not in numbers and "1.02" not in numbers


def test_text_is_escaped_and_output_is_the_same_each_time():
    panel = Panel("<b> & 'q'", xlabel='"x"').line([0, 1], [0, 1], label="</svg>")
    markup = figure([panel, Panel("second").note("nothing yet")])
    root = parse(markup)
    assert {"<b> & 'q'", '"x"', "</svg>", "nothing yet"} <= {t.text for t in root.iter(f"{SVG}text")}
    assert markup == figure([panel, Panel("second").note("nothing yet")])
    clips = [c.get("id") for c in root.iter(f"{SVG}clipPath")]
    assert len(clips) == len(set(clips)) == 2  # each panel its own


def test_bars_are_as_long_as_their_values():
    panel = Panel(xlim=(0, 1)).barh(["a", "b"], [("f1", [0.5, 1.0]), ("recall", [0.25, None])])
    root = parse(figure([panel], legend_outside=True))
    left, _, right, _ = plot_area(root)
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect") if r.get("fill") not in ("white", None)
              and r.get("height") not in ("10",)]  # the legend's swatches are 10 high
    assert widths == pytest.approx([0.5 * (right - left), 1.0 * (right - left), 0.25 * (right - left)], abs=0.2)


def test_heatmap_writes_every_count_and_colours_by_share():
    counts = [[5, 1, 0], [2, 2, 2], [0, 0, 7]]
    shares = [[c / sum(row) for c in row] for row in counts]
    root = parse(heatmap(shares, ["a", "b", "<c>"], counts=counts, title="m", xlabel="predicted", ylabel="true"))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert [int(t) for t in texts[:9]] == [c for row in counts for c in row]
    cells = [r.get("fill") for r in root.iter(f"{SVG}rect")][1:10]  # after the white background
    assert cells == [blue(s) for row in shares for s in row]
    assert {"a", "b", "<c>", "m", "predicted", "true"} <= set(texts)


def test_the_colour_scale_darkens_with_the_share():
    def lightness(colour):
        return sum(int(colour[i:i + 2], 16) for i in (1, 3, 5))

    shades = [lightness(blue(s / 20)) for s in range(21)]
    assert all(a > b for a, b in itertools.pairwise(shades))
    assert blue(-1) == blue(0) and blue(2) == blue(1) == "#08306b"
