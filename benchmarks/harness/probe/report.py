"""The report: a table per probe, then the defects and findings of all."""

from __future__ import annotations

from personabid.bench.probe.results import ProbeResult


def print_table(rows: list[tuple[str, str]], width: int = 110) -> None:
    left = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        lines = _wrap(value, width - left - 3)
        print(f"{label.ljust(left)} | {lines[0]}")
        for line in lines[1:]:
            print(f"{' ' * left} | {line}")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for part in text.split("\n"):
        while len(part) > width:
            cut = part.rfind(" ", 0, width)
            cut = cut if cut > width // 2 else width
            lines.append(part[:cut])
            part = part[cut:].lstrip()
        lines.append(part)
    return lines or [""]


def print_report(results: list[ProbeResult], header: list[tuple[str, str]]) -> None:
    print_table(header)
    for result in results:
        print(f"\n== {result.name} ({result.seconds:.1f}s) ==")
        print_table(result.rows)
        for note in result.notes:
            print(f"  note: {note}")
    print("\n== summary ==")
    print_table([(r.name, f"{len(r.defects)} defect(s), {len(r.findings)} finding(s)") for r in results])
    for result in results:
        for defect in result.defects:
            print(f"  DEFECT {result.name}: {defect}")
        for finding in result.findings:
            print(f"  FINDING {result.name}: {finding}")
