"""A sample of the running bidder under load (py-spy), folded to the functions that cost most.

The profile of one request (profile.py) times the path in this process, one call at a time, with warm
caches; the server under load also runs gRPC's asyncio machinery and its poller thread, and shares its
cores and caches with the load. py-spy samples the real process from outside (without pausing it:
--nonblocking), and each function's share of the samples, times the run's server CPU per request, says
how many microseconds of a request it takes under load. Samples are of threads that were running (py-spy
leaves idle ones out), so the shares are of the process's busy time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 200  # samples a second
TOP = 25


def py_spy_binary() -> str:
    """py-spy beside this Python (the project's venv), else on PATH; a clear error if neither."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--py-spy: py-spy is not installed (pip install py-spy, in the project's venv)")
    return found


class Recording:
    """`py-spy record` of process `pid` for `seconds`, its raw (folded) stacks written to `path`."""

    def __init__(self, pid: int, seconds: float, path: Path, log_path: Path) -> None:
        self.path = path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                py_spy_binary(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(RATE), "--format", "raw", "--nonblocking", "--subprocesses",
                "--output", str(path),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait(self, timeout: float) -> bool:
        """Whether py-spy wrote its samples within `timeout` seconds (it is stopped otherwise)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        finally:
            self._log.close()
        return self.process.returncode == 0 and self.path.is_file()


def fold(raw: str, cpu_us_per_request: float | None, top: int = TOP) -> dict[str, Any]:
    """The top functions of py-spy's raw output ("frame;frame;... count" a line, outermost first), by
    inclusive samples (the function anywhere on the stack) and by self samples (innermost), each with its
    share and, given the server CPU per request, its microseconds per request."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(frame) for frame in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def rows(counts: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "samples": n,
                "share": round(n / total, 4),
                "us_per_request": round(n / total * cpu_us_per_request, 1) if cpu_us_per_request else None,
            }
            for name, n in counts.most_common(top)
        ]

    return {"samples": total, "top_inclusive": rows(inclusive), "top_self": rows(own)}


def _function(frame: str) -> str:
    """A frame as "function (file)", without the line number: a function's lines count together."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})" if path else name


def summary_text(folded: dict[str, Any]) -> str:
    """The folded figures as plain text, for the results directory."""
    lines = [f"{folded['samples']} samples of running threads"]
    for title, key in (("inclusive", "top_inclusive"), ("self", "top_self")):
        lines += ["", f"top functions, {title}:", f"{'share':>7} {'us/req':>8}  function"]
        for row in folded[key]:
            us = "-" if row["us_per_request"] is None else f"{row['us_per_request']:.1f}"
            lines.append(f"{100 * row['share']:6.1f}% {us:>8}  {row['function']}")
    return "\n".join(lines) + "\n"
