"""Self-contained HTML reports: the page with its inline CSS, tables, callouts, tiles and sections, and
the text and number formatting they and the charts (training/reports/charts.py) share; no script, no URL.

A report is one file that a marketer opens in a browser, mails or prints. Nothing in it is fetched (a
Content-Security-Policy forbids it, should anything slip in), every text that comes from data is escaped
(campaign ids are advertisers' input), and a value that is not a finite number (NaN, inf, None) reads
"n/a" instead of breaking a table or a chart. Every primitive returns an HTML fragment (str) that `page`
assembles.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import numbers
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path

from personabid.artifact import write_atomic

NA = "n/a"
# A column's or axis' number format: a format() spec (",.2f", ".1%"), "usd", "int", or a function.
Format = str | Callable[[float], str] | None

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#b07aa1",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#bab0ac",
)
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#e4e7eb"
AXIS = "#9aa5b1"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# ---- text and numbers ---------------------------------------------------------------------------------


def text(value: object) -> str:
    """`value` as text that is safe in HTML and in SVG (XML): escaped, and control characters that XML
    forbids replaced, so that a campaign id can never become markup or make a chart unreadable."""
    return escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def finite(value: object) -> float | None:
    """`value` as a finite float, or None for NaN, inf, None, text and anything else."""
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def format_value(value: object, fmt: Format = None) -> str:
    """A number for people: `fmt` when given, else thousands separators and a sensible precision.
    Not a finite number -> "n/a". A number that is not zero never reads as zero: a fixed-point format
    gains the decimals it needs ("$0.004" rather than "$0.00")."""
    number = finite(value)
    if number is None:
        return NA
    if callable(fmt):
        return fmt(number)
    if fmt == "usd":
        return ("-" if number < 0 else "") + "$" + fixed_point(abs(number), ",.2f")
    if fmt == "int":
        return format(number, ",.0f")
    if fmt:
        return fixed_point(number, fmt)
    size = abs(number)
    if size >= 1e15 or (0 < size < 1e-4):
        return f"{number:.3g}"
    if number.is_integer() or size >= 1000:
        return f"{number:,.0f}"
    return f"{number:.4g}"


FIXED_POINT = re.compile(r"^(?P<head>.*\.)(?P<digits>\d+)(?P<kind>[f%])$")
MAX_DECIMALS = 12


def fixed_point(number: float, fmt: str, decimals: int | None = None) -> str:
    """`number` in the format() spec `fmt`; a fixed-point spec (".2f", "+.1%") with its decimals (or
    `decimals` instead), and more while a number that is not zero would read as zero."""
    match = FIXED_POINT.match(fmt)
    if match is None:
        return format(number, fmt)
    digits = int(match["digits"]) if decimals is None else decimals
    shown = format(number, f"{match['head']}{digits}{match['kind']}")
    while number != 0 and not any(c in "123456789" for c in shown):
        if digits >= MAX_DECIMALS:
            return f"{number * 100:.2e}%" if match["kind"] == "%" else f"{number:.2e}"
        digits += 1
        shown = format(number, f"{match['head']}{digits}{match['kind']}")
    return shown


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# ---- tables, boxes, the page --------------------------------------------------------------------------


def table(
    rows: Sequence[Mapping[str, object]],
    *,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    formats: Mapping[str, Format] | None = None,
    title: str | None = None,
    csv_name: str | None = None,
    max_rows: int | None = None,
) -> str:
    """A table of `rows` (dicts), numbers right-aligned and formatted (`formats` per column, else
    automatic), non-finite numbers as n/a. `columns`: which keys, in order, or a mapping key -> header
    (default: every key in order of first appearance). `csv_name`: add a download link carrying the rows
    as CSV in a data: URI (inside the file; nothing is fetched). `max_rows`: show only the first rows."""
    keys = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    headers = columns if isinstance(columns, Mapping) else {k: k for k in keys}
    formats = formats or {}
    shown = rows if max_rows is None else rows[:max_rows]
    numeric = {k for k in keys if any(is_number(r.get(k)) for r in rows)}
    head = "".join(f'<th scope="col"{_NUM if k in numeric else ""}>{text(headers[k])}</th>' for k in keys)
    body = "".join(
        "<tr>" + "".join(_cell(r.get(k), formats.get(k), k in numeric) for k in keys) + "</tr>" for r in shown
    )
    caption = f"<caption>{text(title)}</caption>" if title else ""
    parts = [
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    ]
    if not rows:
        parts.append('<p class="note">No rows.</p>')
    if len(shown) < len(rows):
        parts.append(f'<p class="note">First {len(shown):,} of {len(rows):,} rows.</p>')
    if csv_name:
        parts.append(_csv_link(rows, keys, csv_name))
    return "".join(parts) + "</div>"


_NUM = ' class="num"'
SHORT = 32  # characters: a text cell this short is not wrapped


def _cell(value: object, fmt: Format, numeric: bool) -> str:
    if value is None and not numeric:
        return "<td></td>"
    if is_number(value) or value is None:  # None in a column of numbers: a rate of nothing, say
        shown = format_value(value, fmt)
        return f'<td class="num{" na" if shown == NA else ""}">{text(shown)}</td>'
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    words = str(value)
    # Short values (ids, dates, intervals) stay on one line; long ones (notes) wrap.
    wrap = ' class="short"' if len(words) <= SHORT else ""
    return f"<td{wrap}>{text(words)}</td>"


def _csv_link(rows: Sequence[Mapping[str, object]], keys: Sequence[str], name: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys)
    for r in rows:
        writer.writerow(
            ["" if is_number(r.get(k)) and finite(r.get(k)) is None else r.get(k, "") for k in keys]
        )
    href = "data:text/csv;charset=utf-8," + urllib.parse.quote(out.getvalue())
    return f'<p class="download"><a href="{text(href)}" download="{text(name)}">Download {text(name)}</a></p>'


LEVELS = {"ok": "✔", "warn": "⚠", "bad": "✖", "info": "ℹ"}


def callout(title: str, body: str = "", *, level: str = "info") -> str:
    """A highlighted box: level "ok" (green), "warn" (amber), "bad" (red) or "info" (blue)."""
    if level not in LEVELS:
        raise ValueError(f"level: {level!r} is not one of {sorted(LEVELS)}")
    detail = f"<p>{text(body)}</p>" if body else ""
    return (
        f'<div class="callout {level}" role="status">'
        f'<span class="icon" aria-hidden="true">{LEVELS[level]}</span>'
        f"<div><strong>{text(title)}</strong>{detail}</div></div>"
    )


def verdict(ok: bool, title: str, body: str = "") -> str:
    """A pass/fail box, e.g. the sample-ratio check: green when `ok`, red otherwise."""
    return callout(title, body, level="ok" if ok else "bad")


def tiles(items: Sequence[tuple[str, object] | tuple[str, object, Format]]) -> str:
    """Headline numbers in a row of tiles: (label, value[, format])."""
    cells = []
    for item in items:
        label, value, fmt = (*item, None)[:3]
        shown = format_value(value, fmt) if is_number(value) or value is None else str(value)
        cells.append(
            f'<div class="tile"><div class="tile-label">{text(label)}</div>'
            f'<div class="tile-value">{text(shown)}</div></div>'
        )
    return f'<div class="tiles">{"".join(cells)}</div>'


def paragraph(body: str) -> str:
    return f"<p>{text(body)}</p>"


def section(heading: str, *parts: str, note: str | None = None) -> str:
    """A titled section of fragments (the primitives' output), with an optional explanatory note."""
    explained = f'<p class="note">{text(note)}</p>' if note else ""
    return f"<section><h2>{text(heading)}</h2>{explained}{''.join(parts)}</section>"


CSS = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #f5f7fa; color: {INK}; font: 14px/1.5 {FONT}; }}
main {{ max-width: 1040px; margin: 0 auto; padding: 24px 28px 40px; }}
header.report {{ border-bottom: 3px solid {PALETTE[0]}; margin-bottom: 20px; padding-bottom: 12px; }}
h1 {{ font-size: 26px; margin: 0 0 6px; letter-spacing: -0.01em; }}
h2 {{ font-size: 19px; margin: 0 0 10px; }}
.meta {{ color: {MUTED}; font-size: 13px; margin: 0; overflow-wrap: anywhere; }}
section {{ background: #fff; border: 1px solid {GRID}; border-radius: 8px; padding: 18px 22px;
  margin: 0 0 18px; box-shadow: 0 1px 2px rgba(31, 41, 51, 0.06); }}
figure.figure {{ margin: 8px 0 16px; }}
svg.chart {{ max-width: 100%; height: auto; display: block; overflow: visible; }}
figcaption, .note {{ color: {MUTED}; font-size: 12.5px; margin: 4px 0 8px; }}
.table-wrap {{ overflow-x: auto; margin: 8px 0 14px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
caption {{ text-align: left; font-weight: 600; padding: 0 0 6px; }}
th, td {{ padding: 5px 10px; border-bottom: 1px solid {GRID}; text-align: left; vertical-align: top; }}
th {{ background: #eef2f6; font-weight: 600; white-space: nowrap; position: sticky; top: 0; }}
tbody tr:nth-child(even) {{ background: #fafbfc; }}
td.short {{ white-space: nowrap; }}
th.num, td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.na {{ color: {MUTED}; }}
.download a {{ color: {PALETTE[0]}; font-size: 13px; }}
.callout {{ display: flex; gap: 12px; align-items: flex-start; border-radius: 8px; padding: 12px 16px;
  margin: 0 0 18px; border: 1px solid; }}
.callout .icon {{ font-size: 20px; line-height: 1.2; }}
.callout p {{ margin: 4px 0 0; }}
.callout.ok {{ background: #e8f5ec; border-color: #9fd3b0; color: #1d5b34; }}
.callout.warn {{ background: #fff6e0; border-color: #f0cf7a; color: #6b4b00; }}
.callout.bad {{ background: #fdeceb; border-color: #eea5a1; color: #8a231d; }}
.callout.info {{ background: #e9f1fa; border-color: #a9c6e8; color: #1f4a7a; }}
.tiles {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px;
  margin: 4px 0 16px; }}
.tile {{ border: 1px solid {GRID}; border-radius: 6px; padding: 10px 12px; background: #fbfcfd; }}
.tile-label {{ color: {MUTED}; font-size: 12px; }}
.tile-value {{ font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums;
  overflow-wrap: break-word; }}
footer {{ color: {MUTED}; font-size: 12px; margin-top: 24px; }}
@media print {{
  body {{ background: #fff; font-size: 12px; }}
  main {{ max-width: none; padding: 0; }}
  section {{ box-shadow: none; border: none; padding: 0; margin: 0 0 14px; break-inside: avoid; }}
  figure.figure, .callout, tr {{ break-inside: avoid; }}
  .table-wrap {{ overflow: visible; }}
  th {{ position: static; }}
  .download {{ display: none; }}
  .tile-value {{ font-size: 16px; }}
}}
"""

# Nothing may be fetched: no script, no connection, no image, font or style from anywhere else.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def page(
    title: str,
    sections: Sequence[str],
    *,
    source: str | Path | None = None,
    generated_at: dt.datetime | None = None,
    subtitle: str | None = None,
) -> str:
    """A whole HTML document: a header (title, when it was generated, the source log) and `sections`
    (fragments from the functions above, e.g. `section(...)`), with inline CSS that also prints well."""
    when = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = [f"Generated {when}"]
    if source is not None:
        meta.append(f"source: {source}")
    lines = "".join(
        f'<p class="meta">{text(line)}</p>' for line in ([subtitle] if subtitle else []) + [" · ".join(meta)]
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{CSS}</style></head>"
        f'<body><main><header class="report"><h1>{text(title)}</h1>{lines}</header>'
        + "".join(sections)
        + "<footer>A self-contained file: charts are drawn inline, nothing is fetched.</footer>"
        + "</main></body></html>\n"
    )


def write_page(path: Path, document: str) -> None:
    """Write `document` to `path` (UTF-8) atomically: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, document.encode("utf-8"))
