"""Open a local HTML file in Debian's headless chromium and say what rendered.

`render(path, screenshot)` loads the file in a new, empty browser profile through playwright, records
every request the page attempts besides the file itself (a self-contained report attempts none), saves
a full-page screenshot (PNG) and returns the charts (inline SVGs: box and drawn marks), tables (rows)
and headings that the browser laid out.

The page's own Content-Security-Policy is bypassed, so that what is recorded is what the markup asks
for rather than what the policy lets through; every such request is aborted before it leaves the
machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import system_command

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (tests may run as root in a container), nothing that phones home on its own, so that any
# request recorded is the page's.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """An inline <svg>: its title, its box on the page and how many of its data marks (class "mark")
    were laid out with a non-zero size."""

    title: str
    box: Box
    marks: int
    section: str  # the heading of the section it is in ("" outside one)


@dataclass(frozen=True)
class Table:
    caption: str
    headers: list[str]
    rows: int
    box: Box
    section: str
    cells: list[list[str]] = field(repr=False)


@dataclass(frozen=True)
class Callout:
    """A highlighted box (a verdict): its level ("ok", "warn", "bad", "info") and text."""

    level: str
    text: str
    box: Box


@dataclass(frozen=True)
class Rendered:
    requests: list[str]  # every URL the page tried to load besides the file itself
    console: list[str]  # the browser console's errors and warnings
    charts: list[Chart]
    tables: list[Table]
    callouts: list[Callout]
    headings: list[str]  # text of h1, h2, h3 in document order
    text: str  # the page's visible text (innerText)
    elements: dict[str, int]  # count of elements by tag name (lower case)
    screenshot: Path


# Runs in the page: what the layout engine made of the document.
_MEASURE = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {x: r.x, y: r.y, width: r.width, height: r.height}; };
  const drawn = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 || r.height > 0; };
  const section = (e) => { const s = e.closest('section'); const h = s && s.querySelector('h2');
    return h ? h.textContent : ''; };
  const charts = [...document.querySelectorAll('svg')].filter((s) => !s.parentElement.closest('svg'))
    .map((s) => ({title: (s.querySelector(':scope > title') || {}).textContent || '', box: box(s),
      marks: [...s.querySelectorAll('.mark')].filter(drawn).length, section: section(s)}));
  const tables = [...document.querySelectorAll('table')].map((t) => ({
    caption: t.caption ? t.caption.textContent : '',
    headers: [...t.querySelectorAll('thead th')].map((h) => h.textContent),
    rows: t.tBodies.length ? [...t.tBodies].reduce((n, b) => n + b.rows.length, 0) : 0,
    box: box(t),
    section: section(t),
    cells: [...t.querySelectorAll('tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))}));
  const headings = [...document.querySelectorAll('h1, h2, h3')].map((h) => h.textContent);
  const callouts = [...document.querySelectorAll('.callout')].map((c) => ({
    level: [...c.classList].filter((k) => k !== 'callout').join(' '), text: c.innerText, box: box(c)}));
  const elements = {};
  for (const e of document.querySelectorAll('*')) {
    const tag = e.tagName.toLowerCase(); elements[tag] = (elements[tag] || 0) + 1; }
  return {charts, tables, callouts, headings, text: document.body.innerText, elements};
}"""


def render(path: Path, screenshot: Path, width: int = 1200) -> Rendered:
    """Load `path` (a local HTML file) in headless chromium, screenshot the full page to `screenshot`."""
    from playwright.sync_api import Route, sync_playwright

    # Missing, the browser fails the test (never skips it): a report never opened in a browser is untested.
    chromium = system_command(str(CHROMIUM), "chromium")
    url = path.resolve().as_uri()
    requests: list[str] = []
    console: list[str] = []

    def only_the_file(route: Route) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
            context.route("**/*", only_the_file)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url) if request.url != url else None)
            page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
            page.goto(url, wait_until="networkidle")
            measured = page.evaluate(_MEASURE)
            page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        finally:
            browser.close()
    return Rendered(
        requests=requests,
        console=console,
        charts=[Chart(c["title"], Box(**c["box"]), c["marks"], c["section"]) for c in measured["charts"]],
        tables=[
            Table(t["caption"], t["headers"], t["rows"], Box(**t["box"]), t["section"], t["cells"])
            for t in measured["tables"]
        ],
        callouts=[Callout(c["level"], c["text"], Box(**c["box"])) for c in measured["callouts"]],
        headings=measured["headings"],
        text=measured["text"],
        elements=measured["elements"],
        screenshot=screenshot,
    )
