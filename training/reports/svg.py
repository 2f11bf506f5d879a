"""The parts the report charts (training/reports/charts.py) are drawn with: rough text widths, SVG
coordinates, linear scales, round axis ticks and their labels, and the SVG marks every chart shares (the
document, its figure and caption, text, rules, a legend, axes and grid lines).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence

from personabid.training.reports.html import (
    AXIS,
    FIXED_POINT,
    FONT,
    GRID,
    INK,
    MAX_DECIMALS,
    MUTED,
    PALETTE,
    Format,
    fixed_point,
    format_value,
    text,
)

# Magnitudes beyond this are drawn at it: coordinates stay finite (1e308 - -1e308 overflows).
LARGEST = 1e300


# ---- text in a chart ----------------------------------------------------------------------------------


def text_width(label: str, size: float = 12) -> float:
    """A rough rendered width (px) of `label` in the sans-serif font: for layout only."""
    return len(label) * size * 0.58


def clip(label: str, size: float, room: float) -> str:
    """`label` shortened with an ellipsis to fit `room` px."""
    fits = max(int(room / (size * 0.58)), 2)
    return label if len(label) <= fits else label[: fits - 1] + "…"


# ---- scales and axes ----------------------------------------------------------------------------------


def coord(value: float) -> str:
    """An SVG coordinate: always a finite number with one decimal."""
    if not math.isfinite(value):
        value = 0.0
    return f"{max(-1e6, min(1e6, value)):.1f}"


def _clamp(value: float) -> float:
    return max(-LARGEST, min(LARGEST, value))


def nice_ticks(low: float, high: float, count: int = 5, integral: bool = False) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high].

    A flat or empty range is widened so that the axis always has at least two ticks; magnitudes below
    1e-200 count as zero and beyond LARGEST as LARGEST."""
    low, high = _clamp(min(low, high)), _clamp(max(low, high))
    if max(abs(low), abs(high)) < 1e-200:  # zero, or too small for a power of ten as a step
        low, high = 0.0, 1.0
    if high - low <= max(abs(low), abs(high)) * 1e-9:
        pad = max(abs(low), abs(high)) * 0.1
        low, high = low - pad, high + pad
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integral else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in steps if raw <= m * magnitude * (1 + 1e-9))
    if integral:
        step = max(step, 1.0)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [(first + i) * step for i in range(int(last - first) + 1)]


def tick_labels(ticks: Sequence[float], fmt: Format) -> list[str]:
    """Axis labels: `fmt` when given, else one compact unit (k, M, B, T) and precision for the axis."""
    if fmt == "usd":
        return [
            "$" + label if not label.startswith("-") else "-$" + label[1:]
            for label in tick_labels(ticks, None)
        ]
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    match = FIXED_POINT.match(fmt) if isinstance(fmt, str) else None
    if isinstance(fmt, str) and match:
        # Exactly the decimals of the step ("-200%", "0.5%"); a signed format would write zero as "+0%".
        decimals = _decimals(step * 100 if match["kind"] == "%" else step)
        return ["0" if t == 0 else fixed_point(t, fmt, decimals) for t in ticks]
    if fmt is not None:
        return ["0" if t == 0 else format_value(t, fmt) for t in ticks]
    top = max(abs(t) for t in ticks)
    if top >= 1e15 or top < 1e-6:
        return [f"{t:.3g}" if t else "0" for t in ticks]
    units = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
    # Thousands read best written out ("2,500") up to 10,000.
    unit, suffix = next(((u, s) for u, s in units if top >= max(u, 1e4)), (1.0, ""))
    decimals = _decimals(step / unit)
    labels = []
    for t in ticks:
        label = f"{t / unit:,.{decimals}f}"
        labels.append("0" if float(t) == 0 else label + suffix)
    return labels


def _decimals(step: float) -> int:
    """The decimals that write every multiple of `step` exactly (0.25 -> 2, 500 -> 0)."""
    decimals, scaled = 0, abs(step)
    while decimals < MAX_DECIMALS and abs(round(scaled) - scaled) > 1e-6 * max(scaled, 1e-12):
        decimals, scaled = decimals + 1, scaled * 10
    return decimals


def linear_scale(domain: tuple[float, float], span: tuple[float, float]) -> Callable[[float], float]:
    """A linear map from data `domain` to pixel `span`, clamped to the data limit."""
    d0, d1 = domain
    width = (d1 - d0) or 1.0
    return lambda v: span[0] + (_clamp(v) - d0) / width * (span[1] - span[0])


# ---- SVG building blocks ------------------------------------------------------------------------------


def svg(width: float, height: float, title: str, body: Iterable[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {coord(width)} {coord(height)}" width="{coord(width)}" '
        f'height="{coord(height)}" role="img" aria-label="{text(title)}" font-family="{FONT}" '
        f'font-size="12" fill="{INK}"><title>{text(title)}</title>'
        f'<text x="0" y="18" font-size="15" font-weight="600">{text(title)}</text>' + "".join(body) + "</svg>"
    )


def figure(drawing: str, note: str | None) -> str:
    caption = f"<figcaption>{text(note)}</figcaption>" if note else ""
    return f'<figure class="figure">{drawing}{caption}</figure>'


def text_at(x: float, y: float, label: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{coord(x)}" y="{coord(y)}" text-anchor="{anchor}"{extra}>{text(label)}</text>'


def rule(x1: float, y1: float, x2: float, y2: float, color: str, extra: str = "") -> str:
    return (
        f'<line x1="{coord(x1)}" y1="{coord(y1)}" x2="{coord(x2)}" y2="{coord(y2)}" stroke="{color}"{extra}/>'
    )


def no_data(width: float, top: float, height: float) -> str:
    return text_at(width / 2, top + height / 2, "no data", "middle", f' fill="{MUTED}" font-style="italic"')


def legend_marks(
    names: Sequence[str], width: float, top: float, dashed: Collection[str] = ()
) -> tuple[list[str], float]:
    """Swatches and names in rows from the left; returns the marks and the height they take."""
    marks: list[str] = []
    x, y = 0.0, top
    for i, name in enumerate(names):
        label = clip(name, 12, 220)
        item = 18 + text_width(label) + 18
        if x > 0 and x + item > width:
            x, y = 0.0, y + 18
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="4 2"' if name in dashed else ""
        marks.append(rule(x, y - 7, x + 14, y - 7, color, f' stroke-width="3"{dash}'))
        marks.append(text_at(x + 18, y - 3, label, extra=f' fill="{MUTED}"'))
        x += item
    return marks, (y - top + 18 if names else 0)


def x_axis(
    ticks: Sequence[float], labels: Sequence[str], x: Callable[[float], float], y0: float
) -> list[str]:
    marks = []
    for tick, label in zip(ticks, labels, strict=True):
        marks.append(rule(x(tick), y0, x(tick), y0 + 4, AXIS))
        marks.append(text_at(x(tick), y0 + 17, label, "middle", f' fill="{MUTED}" font-size="11"'))
    return marks


def grid_y(
    ticks: Sequence[float], labels: Sequence[str], y: Callable[[float], float], x0: float, x1: float
) -> list[str]:
    marks = []
    for tick, label in zip(ticks, labels, strict=True):
        marks.append(rule(x0, y(tick), x1, y(tick), GRID))
        marks.append(text_at(x0 - 6, y(tick) + 4, label, "end", f' fill="{MUTED}" font-size="11"'))
    return marks


def grid_x(
    ticks: Sequence[float], labels: Sequence[str], x: Callable[[float], float], y0: float, y1: float
) -> list[str]:
    marks = [rule(x(t), y0, x(t), y1, GRID) for t in ticks]
    return marks + x_axis(ticks, labels, x, y1)
