"""Inline SVG charts for the HTML reports (training/reports/html.py): line charts, horizontal bars, a
conversion funnel and confidence intervals, each an HTML <figure> fragment computed here (no script).

Every text from data is escaped, a value that is not a finite number reads "n/a" and leaves a gap rather
than breaking a chart, and data marks (lines, points, bars, intervals) carry class "mark", so that a test
in a real browser can count what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from personabid.training.reports.html import (
    AXIS,
    GRID,
    INK,
    MUTED,
    NA,
    PALETTE,
    Format,
    finite,
    format_value,
    is_number,
    text,
)
from personabid.training.reports.svg import (
    clip,
    coord,
    figure,
    grid_x,
    grid_y,
    legend_marks,
    linear_scale,
    nice_ticks,
    no_data,
    rule,
    svg,
    text_at,
    text_width,
    tick_labels,
    x_axis,
)

NEGATIVE = "#c2413b"
TITLE_HEIGHT = 30
WIDTH = 880  # px: a section's inner width on a desktop page; narrower screens scale it down


# ---- charts -------------------------------------------------------------------------------------------


def line_chart(
    title: str,
    x: Sequence[object],
    series: Mapping[str, Sequence[object]],
    *,
    x_label: str = "",
    y_label: str = "",
    y_format: Format = None,
    x_format: Format = None,
    zero: bool = True,
    dashed: Collection[str] = (),
    references: Mapping[str, object] | None = None,
    breaks: Collection[int] = (),
    width: int = WIDTH,
    height: int = 320,
    note: str | None = None,
) -> str:
    """Several series over a shared x (numbers, e.g. a day's hours, or category labels).

    `series` maps a name to its y values, aligned with `x` (extra values are ignored; with an empty `x`
    the positions 0, 1, ... are used); points are joined in the order given, so numeric `x` comes
    sorted. A value that is not a finite number leaves a gap in its line and is counted in the caption
    as n/a. `zero` keeps 0 on the y axis (honest for counts and rates).
    `dashed` names series drawn dashed (e.g. a plan against the actual); `references` draws labelled
    horizontal lines (e.g. {"daily budget": 1000.0}); `breaks` are the indices of x where every line starts
    afresh (a new day of a cumulative curve, which a joining segment would show as a drop)."""
    names = [str(name) for name in series]
    columns = [list(values) for values in series.values()]
    length = len(x) if len(x) else max((len(c) for c in columns), default=0)
    xs = list(x) if len(x) else list(range(length))
    numeric = bool(xs) and all(is_number(v) for v in xs)
    position = [finite(v) for v in xs] if numeric else [float(i) for i in range(length)]
    dashed = {str(d) for d in dashed}
    legend, legend_height = legend_marks(names, width, TITLE_HEIGHT + 12, dashed)
    lines = {str(name): finite(value) for name, value in (references or {}).items()}
    top = TITLE_HEIGHT + legend_height + 14
    tall = height + max(legend_height - 18, 0)  # a legend of many rows takes no room from the plot
    bottom = tall - (40 if x_label else 26)
    points = [[(i, position[i], finite(v)) for i, v in enumerate(values[:length])] for values in columns]
    finite_y = [y for run in points for _, p, y in run if p is not None and y is not None]
    missing = sum(1 for run in points for _, p, y in run if p is None or y is None)
    if not finite_y:
        body = [*legend, no_data(width, top, bottom - top)]
        return figure(svg(width, tall, title, body), _caption(note, missing))
    low, high = min(finite_y), max(finite_y)
    low, high = min([low, *_known(lines.values())]), max([high, *_known(lines.values())])
    y_ticks = nice_ticks(min(low, 0.0) if zero else low, max(high, 0.0) if zero else high, 5)
    y_labels = tick_labels(y_ticks, y_format)
    left = max(text_width(label, 11) for label in y_labels) + 12 + (16 if y_label else 0)
    right = width - 12
    y = linear_scale((y_ticks[0], y_ticks[-1]), (bottom, top))
    body = [*legend, *grid_y(y_ticks, y_labels, y, left, right)]
    if numeric:
        known = [p for p in position if p is not None]
        integral = all(p.is_integer() for p in known)
        x_ticks = nice_ticks(min(known), max(known), max(int((right - left) / 80), 2), integral)
        x_ticks = [t for t in x_ticks if min(known) <= t <= max(known)] or x_ticks
        # A single x value sits in the middle of the axis.
        domain = (min(known), max(known)) if max(known) > min(known) else (known[0] - 1, known[0] + 1)
        xpos = linear_scale(domain, (left, right))
        body += x_axis(x_ticks, tick_labels(x_ticks, x_format), xpos, bottom)
    else:
        xpos = linear_scale(
            (0, max(length - 1, 1)), (left + 8, right - 8) if length > 1 else (left + (right - left) / 2,) * 2
        )
        body += _category_axis([str(v) for v in xs], xpos, bottom, right - left)
    body.append(rule(left, bottom, right, bottom, AXIS))
    body += _axis_titles(x_label, y_label, left, right, top, bottom, tall)
    body += _references(lines, y, left, right, y_format)
    for k, (name, run) in enumerate(zip(names, points, strict=True)):
        color = PALETTE[k % len(PALETTE)]
        body += _series_marks(name, run, xs, xpos, y, color, y_format, x_label, name in dashed, set(breaks))
    return figure(svg(width, tall, title, body), _caption(note, missing))


def _known(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def _references(
    lines: Mapping[str, float | None], y: Callable[[float], float], left: float, right: float, fmt: Format
) -> list[str]:
    """Labelled horizontal reference lines (a budget, a target) across the plot."""
    marks = []
    for name, value in lines.items():
        if value is None:
            continue
        label = f"{name}: {format_value(value, fmt)}"
        marks.append(
            f'<line class="mark" x1="{coord(left)}" y1="{coord(y(value))}" x2="{coord(right)}" '
            f'y2="{coord(y(value))}" '
            f'stroke="{INK}" stroke-width="1.5" stroke-dasharray="6 4"><title>{text(label)}</title></line>'
        )
        marks.append(text_at(right - 4, y(value) - 5, label, "end", f' fill="{INK}" font-size="11"'))
    return marks


def _category_axis(labels: Sequence[str], x: Callable[[float], float], y0: float, room: float) -> list[str]:
    """Category labels under the axis, every k-th one when they would overlap."""
    if not labels:
        return []
    widest = max(text_width(clip(label, 11, 120), 11) for label in labels) + 10
    every = max(1, math.ceil(len(labels) * widest / max(room, 1)))
    shown = range(0, len(labels), every)
    return x_axis([float(i) for i in shown], [clip(labels[i], 11, 120) for i in shown], x, y0)


def _axis_titles(
    x_label: str, y_label: str, left: float, right: float, top: float, bottom: float, height: float
) -> list[str]:
    marks = []
    if x_label:
        marks.append(text_at((left + right) / 2, height - 6, x_label, "middle", f' fill="{MUTED}"'))
    if y_label:
        middle = (top + bottom) / 2
        extra = f' fill="{MUTED}" transform="rotate(-90 12 {coord(middle)})"'
        marks.append(text_at(12, middle, y_label, "middle", extra))
    return marks


def _series_marks(
    name: str,
    run: Sequence[tuple[int, float | None, float | None]],
    xs: Sequence[object],
    x: Callable[[float], float],
    y: Callable[[float], float],
    color: str,
    y_format: Format,
    x_label: str,
    dashed: bool = False,
    breaks: Collection[int] = (),
) -> list[str]:
    """One series: a path per stretch of finite points, and a point with a tooltip where there is room."""
    marks: list[str] = []
    stretch: list[tuple[float, float]] = []
    stretches = []
    for i, px, py in run:
        if i in breaks and stretch:
            stretches.append(stretch)
            stretch = []
        if px is None or py is None:
            if stretch:
                stretches.append(stretch)
            stretch = []
        else:
            stretch.append((x(px), y(py)))
    if stretch:
        stretches.append(stretch)
    for line in stretches:
        if len(line) > 1:
            d = "M" + "L".join(f"{coord(a)},{coord(b)}" for a, b in line)
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            marks.append(
                f'<path class="mark" d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash} '
                f'stroke-linejoin="round" stroke-linecap="round"><title>{text(name)}</title></path>'
            )
    dots = len(run) <= 60
    for i, px, py in run:
        if px is None or py is None:
            continue
        alone = (i == 0 or i in breaks or run[i - 1][2] is None) and (
            i + 1 == len(run) or i + 1 in breaks or run[i + 1][2] is None
        )
        if dots or alone:
            tip = f"{name} · {x_label or 'x'} {xs[i] if i < len(xs) else i}: {format_value(py, y_format)}"
            marks.append(
                f'<circle class="mark" cx="{coord(x(px))}" cy="{coord(y(py))}" r="3" fill="{color}" '
                f'stroke="#fff" stroke-width="1"><title>{text(tip)}</title></circle>'
            )
    return marks


def _caption(note: str | None, missing: int) -> str | None:
    gaps = f"{missing} value{'s' if missing != 1 else ''} {NA} (not a finite number): gaps" if missing else ""
    return " ".join(part for part in (note, gaps) if part) or None


def bar_chart(
    title: str,
    bars: Sequence[tuple[object, object]] | Mapping[object, object],
    *,
    value_format: Format = None,
    x_label: str = "",
    width: int = WIDTH,
    color: str = PALETTE[0],
    note: str | None = None,
) -> str:
    """Horizontal bars, one per (label, value), in the given order, each with its value written at its
    end; negative values extend left of zero in another colour, n/a values have no bar."""
    items = list(bars.items()) if isinstance(bars, Mapping) else list(bars)
    labels = [str(label) for label, _ in items]
    values = [finite(value) for _, value in items]
    row = 26
    top = TITLE_HEIGHT + 12
    height = top + max(len(items), 1) * row + (44 if x_label else 30)
    label_room = min(max((text_width(label) for label in labels), default=0) + 10, width * 0.32)
    known = [v for v in values if v is not None]
    if not known:
        return figure(svg(width, height, title, [no_data(width, top, height - top - 30)]), note)
    ticks = nice_ticks(min(0.0, *known), max(0.0, *known), 5)
    axis_labels = tick_labels(ticks, value_format)
    written = [format_value(v, value_format) for v in values]
    value_room = max(text_width(w) for w in written) + 10
    left = label_room + (value_room if min(known) < 0 else 8)
    right = width - value_room
    x = linear_scale((ticks[0], ticks[-1]), (left, right))
    bottom = top + len(items) * row
    body = grid_x(ticks, axis_labels, x, top, bottom)
    for i, (label, value, shown) in enumerate(zip(labels, values, written, strict=True)):
        middle = top + i * row + row / 2
        body.append(text_at(label_room - 8, middle + 4, clip(label, 12, label_room - 8), "end"))
        if value is None:
            body.append(text_at(x(0) + 4, middle + 4, shown, extra=f' fill="{MUTED}"'))
            continue
        start, end = sorted((x(0), x(value)))
        fill = NEGATIVE if value < 0 else color
        body.append(
            f'<rect class="mark" x="{coord(start)}" y="{coord(middle - 8)}" '
            f'width="{coord(max(end - start, 1))}" '
            f'height="16" rx="2" fill="{fill}"><title>{text(label)}: {text(shown)}</title></rect>'
        )
        at, anchor = (start - 4, "end") if value < 0 else (end + 4, "start")
        body.append(text_at(at, middle + 4, shown, anchor, ' font-variant-numeric="tabular-nums"'))
    body.append(rule(x(0), top, x(0), bottom, AXIS))
    if x_label:
        body.append(text_at((left + right) / 2, height - 6, x_label, "middle", f' fill="{MUTED}"'))
    return figure(svg(width, height, title, body), note)


def funnel(
    title: str,
    steps: Sequence[tuple[object, object]],
    *,
    width: int = WIDTH,
    scale: str = "auto",
    note: str | None = None,
) -> str:
    """A conversion funnel: one centred bar per (step, count), e.g. bids -> wins -> impressions ->
    clicks -> conversions, each with its count and its rate from the step before.

    `scale` "linear", "log" or "auto" (log when the largest count is over 100 times the smallest
    positive one, as clicks are to bids: on a linear scale the last steps would be invisible)."""
    labels = [str(label) for label, _ in steps]
    counts = [finite(count) for _, count in steps]
    row = 40
    top = TITLE_HEIGHT + 14
    height = top + max(len(steps), 1) * row + 8
    positive = [c for c in counts if c is not None and c > 0]
    if not positive:
        return figure(svg(width, height, title, [no_data(width, top, height - top)]), note)
    log = scale == "log" or (scale == "auto" and max(positive) > 100 * min(positive))
    label_room = min(max(text_width(label, 13) for label in labels) + 16, width * 0.25)
    text_room = 230
    track = width - label_room - text_room
    centre = label_room + track / 2
    body = []
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        middle = top + i * row + row / 2
        length = _funnel_length(count, positive, log) * track
        shown = format_value(count, "int" if count is not None and count.is_integer() else None)
        rate = _step_rate(counts, i)
        tip = f"{label}: {shown}" + (f" ({rate} of {labels[i - 1]})" if i else "")
        body.append(
            text_at(label_room - 10, middle + 5, clip(label, 13, label_room - 10), "end", ' font-size="13"')
        )
        if length > 0:
            color = PALETTE[i % len(PALETTE)]
            body.append(
                f'<rect class="mark" x="{coord(centre - length / 2)}" y="{coord(middle - 14)}" '
                f'width="{coord(max(length, 2))}" height="28" rx="3" fill="{color}">'
                f"<title>{text(tip)}</title></rect>"
            )
        at = label_room + track + 12
        body.append(
            text_at(at, middle + 1, shown, extra=' font-weight="600" font-variant-numeric="tabular-nums"')
        )
        if i:
            body.append(
                text_at(
                    at, middle + 15, f"{rate} of {labels[i - 1]}", extra=f' fill="{MUTED}" font-size="11"'
                )
            )
    scale_note = "Bar length on a log scale." if log else None
    return figure(svg(width, height, title, body), " ".join(p for p in (note, scale_note) if p) or None)


def _funnel_length(count: float | None, positive: Sequence[float], log: bool) -> float:
    """A step's bar length as a share of the track (0 for zero, negative or n/a counts)."""
    if count is None or count <= 0:
        return 0.0
    if not log:
        return count / max(positive)
    decades = math.log10(max(positive)) - math.log10(min(positive)) + 1
    return (math.log10(count) - math.log10(min(positive)) + 1) / decades


def _step_rate(counts: Sequence[float | None], i: int) -> str:
    if i == 0:
        return ""
    before, now = counts[i - 1], counts[i]
    if before is None or now is None or before == 0:
        return NA
    return format_value(now / before, ".2%")


def interval_bars(
    title: str,
    rows: Sequence[Mapping[str, object]],
    *,
    value_format: Format = None,
    x_label: str = "",
    width: int = WIDTH,
    note: str | None = None,
) -> str:
    """A forest plot: per metric and arm, the estimate as a point and its confidence interval as a bar,
    against a zero line (no difference).

    Each row: "metric", "arm", "estimate", "low", "high", optionally "significant" (bool; drawn filled
    and starred, the others hollow and grey) and "p_value" (in the tooltip). An infinite bound is drawn
    to the plot's edge; a missing estimate reads n/a."""
    row = 28
    top = TITLE_HEIGHT + 14
    height = top + max(len(rows), 1) * row + (46 if x_label else 32)
    bounds = [finite(r.get(k)) for r in rows for k in ("estimate", "low", "high")]
    known = [v for v in bounds if v is not None]
    if not known:
        return figure(svg(width, height, title, [no_data(width, top, height - top - 30)]), note)
    ticks = nice_ticks(min(0.0, *known), max(0.0, *known), 6)
    labels = [f"{r.get('metric', '')} · {r.get('arm', '')}" for r in rows]
    label_room = min(max(text_width(label) for label in labels) + 24, width * 0.34)
    written = [_interval_text(r, value_format) for r in rows]
    text_room = min(max(text_width(w, 11) for w in written) + 16, width * 0.34)
    left, right = label_room, width - text_room
    x = linear_scale((ticks[0], ticks[-1]), (left, right))
    bottom = top + len(rows) * row
    body = grid_x(ticks, tick_labels(ticks, value_format), x, top, bottom)
    body.append(rule(x(0), top - 4, x(0), bottom, INK, ' stroke-dasharray="4 3"'))
    for i, (r, label, shown) in enumerate(zip(rows, labels, written, strict=True)):
        middle = top + i * row + row / 2
        if i and r.get("metric") != rows[i - 1].get("metric"):
            body.append(rule(0, top + i * row, width, top + i * row, GRID))
        body += _interval_row(r, label, shown, middle, x, (left, right), label_room)
    if x_label:
        body.append(text_at((left + right) / 2, height - 6, x_label, "middle", f' fill="{MUTED}"'))
    legend = "Filled and starred: significant; hollow grey: not; dashed line: no difference."
    return figure(svg(width, height, title, body), " ".join(p for p in (legend, note) if p))


def _interval_text(r: Mapping[str, object], fmt: Format) -> str:
    estimate, low, high = (
        _infinite(r.get(k)) or format_value(r.get(k), fmt) for k in ("estimate", "low", "high")
    )
    return f"{estimate} [{low}, {high}]"


def _infinite(value: object) -> str | None:
    """An unbounded interval end as "∞" or "-∞" (anything else: None)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return "∞" if number == math.inf else "-∞" if number == -math.inf else None


def _interval_row(
    r: Mapping[str, object],
    label: str,
    shown: str,
    middle: float,
    x: Callable[[float], float],
    edges: tuple[float, float],
    label_room: float,
) -> list[str]:
    significant = bool(r.get("significant"))
    color = PALETTE[0] if significant else AXIS
    star = " *" if significant else ""
    weight = ' font-weight="600"' if significant else ""
    marks = [text_at(label_room - 12, middle + 4, clip(label, 12, label_room - 24) + star, "end", weight)]
    p_value = finite(r.get("p_value"))
    tip = f"{label}: {shown}" + (f", p = {p_value:.3g}" if p_value is not None else "")
    estimate = finite(r.get("estimate"))
    low, high = (_bound(r.get(k), edges, x) for k in ("low", "high"))
    if low is not None and high is not None:
        # Whisker caps mark a finite end; an unbounded one runs to the plot's edge without a cap.
        caps = "".join(
            f"M{coord(at)},{coord(middle - 5)}V{coord(middle + 5)}"
            for at, key in ((low, "low"), (high, "high"))
            if finite(r.get(key)) is not None
        )
        marks.append(
            f'<path class="mark" d="M{coord(low)},{coord(middle)}H{coord(max(high, low + 1))}{caps}" '
            'fill="none" '
            f'stroke="{color}" stroke-width="2.5"><title>{text(tip)}</title></path>'
        )
    if estimate is not None:
        fill = color if significant else "#fff"
        marks.append(
            f'<circle class="mark" cx="{coord(x(estimate))}" cy="{coord(middle)}" r="5" fill="{fill}" '
            f'stroke="{color if significant else MUTED}" stroke-width="2"><title>{text(tip)}</title></circle>'
        )
    marks.append(text_at(edges[1] + 10, middle + 4, shown, extra=f' font-size="11"{weight}'))
    return marks


def _bound(value: object, edges: tuple[float, float], x: Callable[[float], float]) -> float | None:
    """An interval bound in pixels; infinite bounds go to the plot's edge, NaN or missing to None."""
    number = finite(value)
    if number is not None:
        return x(number)
    unbounded = _infinite(value)
    return None if unbounded is None else edges[0] if unbounded.startswith("-") else edges[1]
