"""Inline SVG charts for the run report: pure functions from numbers to ``<svg>`` markup.

Every chart has labelled axes, a legend when it shows more than one series, and a
``<title>`` on every data mark (the browser shows the exact value on hover, no
script needed). Data marks carry ``class="data"``, so a test can count them. The
markup scales with its container (``viewBox``), so a chart reads at laptop width.
Colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); the candidate is always blue, the baseline orange, the trivial ranker
grey and a gate threshold vermillion.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence

CANDIDATE = "#0072B2"
BASELINE = "#E69F00"
TRIVIAL = "#7F7F7F"
THRESHOLD = "#D55E00"
GREEN = "#009E73"
PURPLE = "#CC79A7"
SKY = "#56B4E9"
SERIES_COLORS = (CANDIDATE, BASELINE, GREEN, PURPLE, SKY, TRIVIAL)
GRID = "#E3E3E3"
INK = "#222222"
MUTED = "#555555"

FONT_SIZE = 12


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float, digits: int = 4) -> str:
    """A number for a label: ints stay ints, floats get ``digits`` decimals (1.0 is "1.0000")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """A generous estimate of the rendered width (DejaVu Sans is about 0.62 em per character)."""
    return len(text) * 0.66 * size


# ---------------------------------------------------------------- scales


def nice_step(span: float, target: int = 5) -> float:
    """A 1, 2 or 5 times a power of ten step that cuts ``span`` into about ``target`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, target)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def nice_domain(
    values: Sequence[float],
    *,
    include: Sequence[float] = (),
    pad: float = 0.05,
    clamp: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """A [lo, hi] that holds every value (and ``include``), padded, optionally clamped."""
    finite = [float(v) for v in [*values, *include] if v is not None and math.isfinite(float(v))]
    if not finite:
        return (0.0, 1.0)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        half = abs(lo) * 0.1 or 0.5
        lo, hi = lo - half, hi + half
    else:
        margin = (hi - lo) * pad
        lo, hi = lo - margin, hi + margin
    if clamp is not None:
        lo, hi = max(clamp[0], lo), min(clamp[1], hi)
    step = nice_step(hi - lo)
    return (math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step)


def ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    step = nice_step(hi - lo, target)
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    out, value = [], first
    while value <= hi + step * 1e-9:
        out.append(round(value, 12))
        value += step
    return out


def tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 and step < 1 else 0
    if step > 0 and not float(step * 10**decimals).is_integer():
        decimals += 1
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


@dataclasses.dataclass(frozen=True)
class Linear:
    """Maps the data interval ``domain`` onto the pixel interval ``range_``."""

    domain: tuple[float, float]
    range_: tuple[float, float]

    def __call__(self, value: float) -> float:
        d0, d1 = self.domain
        r0, r1 = self.range_
        if d1 == d0:
            return (r0 + r1) / 2
        return r0 + (float(value) - d0) * (r1 - r0) / (d1 - d0)


# ---------------------------------------------------------------- building blocks


@dataclasses.dataclass
class Series:
    """One line (or set of dots) of a chart: ``points`` are (x, y) pairs."""

    name: str
    points: list[tuple[float, float]]
    color: str = CANDIDATE
    dashed: bool = False
    line: bool = True
    markers: bool = True
    step: bool = False  # draw as a step function (e.g. best-so-far)


@dataclasses.dataclass
class RefLine:
    """A reference value drawn across the plot (a threshold, the best epoch, zero)."""

    value: float
    label: str
    color: str = THRESHOLD
    dashed: bool = True


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{esc(label)}" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif" '
        f'font-size="{FONT_SIZE}">'
        f"<title>{esc(label)}</title>" + "".join(body) + "</svg>"
    )


def _text(
    x: float,
    y: float,
    content: str,
    *,
    anchor: str = "start",
    color: str = INK,
    size: float | None = None,
    weight: str | None = None,
    cls: str | None = None,
    rotate: bool = False,
) -> str:
    attrs = [f'x="{x:.1f}"', f'y="{y:.1f}"', f'fill="{color}"']
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    if size:
        attrs.append(f'font-size="{size}"')
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if cls:
        attrs.append(f'class="{cls}"')
    if rotate:
        attrs.append(f'transform="rotate(-90 {x:.1f} {y:.1f})"')
    return f"<text {' '.join(attrs)}>{esc(content)}</text>"


def _line(x1, y1, x2, y2, color, *, width: float = 1, dashed: bool = False, cls: str | None = None) -> str:
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
        f'stroke-width="{width}"{dash}{klass}/>'
    )


def _dot(x, y, color, title: str, *, r: float = 4, hollow: bool = False) -> str:
    fill = "#ffffff" if hollow else color
    return (
        f'<circle class="data" cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="{color}" '
        f'stroke-width="1.5"><title>{esc(title)}</title></circle>'
    )


def legend(entries: Sequence[tuple[str, str, str]], x: float, y: float, max_width: float) -> tuple[list[str], float]:
    """Swatches (``(label, colour, kind)``, kind ``dot``, ``hollow``, ``line``, ``dash`` or ``box``), wrapped.

    Returns the markup and the height it takes.
    """
    out, cx, cy = [], x, y
    for label, color, kind in entries:
        width = 22 + text_width(label) + 16
        if cx + width > x + max_width and cx > x:
            cx, cy = x, cy + 18
        if kind in ("dot", "hollow"):
            fill = "#ffffff" if kind == "hollow" else color
            out.append(
                f'<circle cx="{cx + 8:.1f}" cy="{cy - 4:.1f}" r="4" fill="{fill}" stroke="{color}" stroke-width="1.5"/>'
            )
        elif kind == "box":
            out.append(f'<rect x="{cx + 2:.1f}" y="{cy - 9:.1f}" width="12" height="10" fill="{color}"/>')
        else:
            out.append(_line(cx, cy - 4, cx + 16, cy - 4, color, width=2, dashed=kind == "dash"))
        out.append(_text(cx + 22, cy, label, color=INK))
        cx += width
    return out, (cy - y) + 18


def _frame(x0, y0, x1, y1) -> str:
    return (
        f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" fill="none" stroke="#BBBBBB"/>'
    )


# ---------------------------------------------------------------- charts


def _value_axis(sx: Linear, lo: float, hi: float, top: float, bottom: float, height: float, label: str) -> list[str]:
    """The horizontal value axis of a dot or interval chart: grid lines, tick labels, frame, label."""
    left, right = sx.range_
    x_ticks = ticks(lo, hi)
    step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1
    marks = []
    for value in x_ticks:
        marks.append(_line(sx(value), top, sx(value), bottom, GRID))
        marks.append(_text(sx(value), bottom + 16, tick_label(value, step), anchor="middle", color=MUTED))
    marks.append(_frame(left, top, right, bottom))
    marks.append(_text((left + right) / 2, height - 8, label, anchor="middle", cls="axis-label"))
    return marks


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_integer: bool = True,
    hlines: Sequence[RefLine] = (),
    vlines: Sequence[RefLine] = (),
    width: float = 560,
    height: float = 300,
    y_clamp: tuple[float, float] | None = None,
) -> str:
    """Lines and dots over a numeric x axis (epochs, trials, versions)."""
    entries = [(s.name, s.color, "dash" if s.dashed else ("line" if s.line else "dot")) for s in series]
    entries += [(r.label, r.color, "dash" if r.dashed else "line") for r in [*hlines, *vlines]]
    legend_marks, legend_height = legend(entries, 56, 16, width - 70)
    top = 10 + legend_height
    left, right, bottom = 64, width - 16, height - 46
    xs = [p[0] for s in series for p in s.points] + [r.value for r in vlines]
    ys = [p[1] for s in series for p in s.points] + [r.value for r in hlines]
    if x_integer:
        x_lo, x_hi = (min(xs), max(xs)) if xs else (0, 1)
        x_lo, x_hi = (x_lo - 0.5, x_hi + 0.5)
    else:
        x_lo, x_hi = nice_domain(xs, pad=0.02)
    y_lo, y_hi = nice_domain(ys, clamp=y_clamp)
    sx, sy = Linear((x_lo, x_hi), (left, right)), Linear((y_lo, y_hi), (bottom, top))
    body = [*legend_marks]
    y_ticks = ticks(y_lo, y_hi)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1
    for value in y_ticks:
        body.append(_line(left, sy(value), right, sy(value), GRID))
        body.append(_text(left - 6, sy(value) + 4, tick_label(value, y_step), anchor="end", color=MUTED))
    x_ticks = ticks(math.ceil(x_lo), math.floor(x_hi), target=8, integer=True) if x_integer else ticks(x_lo, x_hi)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1
    for value in x_ticks:
        body.append(_line(sx(value), bottom, sx(value), bottom + 4, MUTED))
        body.append(_text(sx(value), bottom + 17, tick_label(value, x_step), anchor="middle", color=MUTED))
    body.append(_frame(left, top, right, bottom))
    body.append(_text((left + right) / 2, height - 8, x_label, anchor="middle", cls="axis-label"))
    body.append(_text(16, (top + bottom) / 2, y_label, anchor="middle", cls="axis-label", rotate=True))
    for ref in hlines:
        body.append(
            _line(left, sy(ref.value), right, sy(ref.value), ref.color, width=1.5, dashed=ref.dashed, cls="ref")
        )
    for ref in vlines:
        body.append(
            _line(sx(ref.value), top, sx(ref.value), bottom, ref.color, width=1.5, dashed=ref.dashed, cls="ref")
        )
    for s in series:
        points = sorted(s.points)
        if s.line and len(points) > 1:
            coords = []
            for i, (x, y) in enumerate(points):
                if s.step and i:
                    coords.append(f"{sx(x):.1f},{sy(points[i - 1][1]):.1f}")
                coords.append(f"{sx(x):.1f},{sy(y):.1f}")
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            body.append(
                f'<polyline class="data" points="{" ".join(coords)}" fill="none" stroke="{s.color}" '
                f'stroke-width="2"{dash}><title>{esc(s.name)}</title></polyline>'
            )
        if s.markers:
            for x, y in points:
                body.append(_dot(sx(x), sy(y), s.color, f"{s.name}: {x_label} {fmt(x)}, {y_label} {fmt(y)}"))
    return _svg(width, height, title, body)


@dataclasses.dataclass
class DotSeries:
    """One model in a dot chart: a value per row (None: absent) and optional intervals."""

    name: str
    values: list[float | None]
    color: str
    intervals: list[tuple[float, float] | None] | None = None
    hollow: bool = False


@dataclasses.dataclass
class RowThreshold:
    row: int
    value: float
    label: str


def dot_chart(
    rows: Sequence[str],
    series: Sequence[DotSeries],
    *,
    title: str,
    x_label: str,
    thresholds: Sequence[RowThreshold] = (),
    width: float = 560,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> str:
    """One row per item (a metric, a slice value), one dot per model, all on one x axis.

    Models sit side by side in each row (candidate on top), with their interval drawn as
    a line with caps where one is given; a gate threshold is a vermillion dashed mark
    across its row, labelled under it.
    """
    label_width = min(220, max(text_width(r) for r in rows) + 16) if rows else 80
    left, right = label_width + 8, width - 24
    entries = [(s.name, s.color, "hollow" if s.hollow else "dot") for s in series]
    if thresholds:
        entries.append(("gate threshold", THRESHOLD, "dash"))
    legend_marks, legend_height = legend(entries, left, 16, right - left)
    top = 10 + legend_height
    band = 10 + 12 * max(1, len(series))
    per_row_extra = {}
    for t in thresholds:
        per_row_extra[t.row] = per_row_extra.get(t.row, 0) + 15
    row_top, y = [], top + 4
    for i in range(len(rows)):
        row_top.append(y)
        y += band + per_row_extra.get(i, 0)
    bottom = y + 2
    height = bottom + 44
    values = [v for s in series for v in s.values if v is not None]
    values += [b for s in series for iv in (s.intervals or []) if iv for b in iv]
    values += [t.value for t in thresholds]
    lo, hi = nice_domain(values, clamp=clamp)
    sx = Linear((lo, hi), (left, right))
    body = [*legend_marks]
    body += _value_axis(sx, lo, hi, top, bottom, height, x_label)
    for i, row in enumerate(rows):
        y0 = row_top[i]
        if i:
            body.append(_line(left, y0, right, y0, "#EEEEEE"))
        body.append(_text(left - 8, y0 + band / 2 + 4, row, anchor="end", cls="row-label"))
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            cy = y0 + 11 + 12 * j
            interval = s.intervals[i] if s.intervals and i < len(s.intervals) else None
            if interval:
                a, b = sx(interval[0]), sx(interval[1])
                body.append(_line(a, cy, b, cy, s.color, width=2, cls="data interval"))
                body.append(_line(a, cy - 4, a, cy + 4, s.color, width=2))
                body.append(_line(b, cy - 4, b, cy + 4, s.color, width=2))
            if value is None:
                continue
            detail = f" (95% interval {fmt(interval[0])} to {fmt(interval[1])})" if interval else ""
            body.append(_dot(sx(value), cy, s.color, f"{s.name}, {row}: {fmt(value)}{detail}", hollow=s.hollow))
        k = 0
        for t in thresholds:
            if t.row != i:
                continue
            x = sx(t.value)
            body.append(_line(x, y0 + 2, x, y0 + band - 2, THRESHOLD, width=2, dashed=True, cls="ref threshold"))
            label_y = y0 + band + 11 + 15 * k
            anchor = "end" if x > (left + right) / 2 else "start"
            body.append(
                _text(x + (-4 if anchor == "end" else 4), label_y, t.label, anchor=anchor, color=THRESHOLD, size=11)
            )
            k += 1
    return _svg(width, height, title, body)


@dataclasses.dataclass
class Interval:
    """One row of a forest plot: an estimate with its 95% interval."""

    label: str
    mean: float
    lo: float
    hi: float
    note: str = ""  # shown on hover


def interval_chart(
    rows: Sequence[Interval],
    *,
    title: str,
    x_label: str,
    refs: Sequence[RefLine] = (),
    width: float = 560,
) -> str:
    """A forest plot: each row's estimate and 95% interval, with zero and the gate marked.

    A row whose whole interval lies above zero is blue, below zero vermillion, across
    zero grey: the colour says whether the data tell the two models apart.
    """
    label_width = min(240, max(text_width(r.label) for r in rows) + 16) if rows else 80
    left, right = label_width + 8, width - 24
    entries = [("above 0", CANDIDATE, "dot"), ("below 0", THRESHOLD, "dot"), ("interval includes 0", TRIVIAL, "dot")]
    entries += [(r.label, r.color, "dash" if r.dashed else "line") for r in refs]
    legend_marks, legend_height = legend(entries, left, 16, right - left)
    top = 10 + legend_height
    band = 22
    bottom = top + 6 + band * len(rows)
    height = bottom + 44
    values = [v for r in rows for v in (r.mean, r.lo, r.hi)] + [r.value for r in refs]
    lo, hi = nice_domain(values, include=(0.0,))
    sx = Linear((lo, hi), (left, right))
    body = [*legend_marks]
    body += _value_axis(sx, lo, hi, top, bottom, height, x_label)
    for ref in refs:
        body.append(
            _line(sx(ref.value), top, sx(ref.value), bottom, ref.color, width=1.5, dashed=ref.dashed, cls="ref")
        )
    for i, row in enumerate(rows):
        cy = top + 3 + band * i + band / 2
        color = CANDIDATE if row.lo > 0 else THRESHOLD if row.hi < 0 else TRIVIAL
        body.append(_text(left - 8, cy + 4, row.label, anchor="end", cls="row-label"))
        body.append(_line(sx(row.lo), cy, sx(row.hi), cy, color, width=2, cls="data interval"))
        body.append(_line(sx(row.lo), cy - 5, sx(row.lo), cy + 5, color, width=2))
        body.append(_line(sx(row.hi), cy - 5, sx(row.hi), cy + 5, color, width=2))
        note = f"; {row.note}" if row.note else ""
        body.append(
            _dot(
                sx(row.mean),
                cy,
                color,
                f"{row.label}: {fmt(row.mean)} (95% interval {fmt(row.lo)} to {fmt(row.hi)}){note}",
            )
        )
    return _svg(width, height, title, body)


def bar_chart(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    color: str = CANDIDATE,
    width: float = 560,
    height: float = 260,
) -> str:
    """Vertical bars over a numeric x axis (a histogram of integer values, e.g. list sizes)."""
    left, right, top, bottom = 64, width - 16, 14, height - 46
    xs = [x for x, _ in points] or [0]
    x_lo, x_hi = min(xs) - 0.5, max(xs) + 0.5
    y_lo, y_hi = nice_domain([0.0, *[y for _, y in points]], pad=0.05)
    y_lo = 0.0
    sx, sy = Linear((x_lo, x_hi), (left, right)), Linear((y_lo, y_hi), (bottom, top))
    body = []
    y_ticks = ticks(y_lo, y_hi, integer=True)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1
    for value in y_ticks:
        body.append(_line(left, sy(value), right, sy(value), GRID))
        body.append(_text(left - 6, sy(value) + 4, tick_label(value, y_step), anchor="end", color=MUTED))
    bar = max(1.0, (sx(1) - sx(0)) * 0.85)
    for x, y in points:
        body.append(
            f'<rect class="data" x="{sx(x) - bar / 2:.1f}" y="{sy(y):.1f}" width="{bar:.1f}" '
            f'height="{max(0.0, sy(0) - sy(y)):.1f}" fill="{color}"><title>{esc(x_label)} {fmt(x)}: '
            f"{fmt(y)}</title></rect>"
        )
    x_ticks = ticks(math.ceil(x_lo), math.floor(x_hi), target=10, integer=True)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1
    for value in x_ticks:
        body.append(_line(sx(value), bottom, sx(value), bottom + 4, MUTED))
        body.append(_text(sx(value), bottom + 17, tick_label(value, x_step), anchor="middle", color=MUTED))
    body.append(_frame(left, top, right, bottom))
    body.append(_text((left + right) / 2, height - 8, x_label, anchor="middle", cls="axis-label"))
    body.append(_text(16, (top + bottom) / 2, y_label, anchor="middle", cls="axis-label", rotate=True))
    return _svg(width, height, title, body)


def hbar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    x_label: str,
    color: str = CANDIDATE,
    value_format=fmt,
    width: float = 560,
) -> str:
    """Horizontal bars, one per named item (missing values per feature, bad rows per reason)."""
    label_width = min(240, max(text_width(name) for name, _ in items) + 16) if items else 80
    value_room = 70
    left, right, top = label_width + 8, width - value_room, 12
    band = 22
    bottom = top + band * max(1, len(items)) + 4
    height = bottom + 44
    hi = nice_domain([0.0, *[v for _, v in items]], pad=0.0)[1] or 1.0
    sx = Linear((0.0, hi), (left, right))
    body = []
    x_ticks = ticks(0.0, hi, integer=all(float(v).is_integer() for _, v in items))
    step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1
    for value in x_ticks:
        body.append(_line(sx(value), top, sx(value), bottom, GRID))
        body.append(_text(sx(value), bottom + 16, tick_label(value, step), anchor="middle", color=MUTED))
    for i, (name, value) in enumerate(items):
        y = top + 4 + band * i
        body.append(_text(left - 8, y + 13, name, anchor="end", cls="row-label"))
        body.append(
            f'<rect class="data" x="{left:.1f}" y="{y + 3:.1f}" width="{max(0.0, sx(value) - left):.1f}" height="14" '
            f'fill="{color}"><title>{esc(name)}: {esc(value_format(value))}</title></rect>'
        )
        body.append(_text(sx(value) + 4, y + 14, value_format(value), color=MUTED, size=11))
    body.append(_line(left, top, left, bottom, "#BBBBBB"))
    body.append(_text((left + right) / 2, height - 8, x_label, anchor="middle", cls="axis-label"))
    return _svg(width, height, title, body)
