"""`personabid serve` with a gate inside the decision, for tests that must hold calls in flight.

Every decision prints `entered <request id>` on standard output when it starts, then waits until a line
`release` arrives on standard input (at most GATE_SECONDS), then decides as usual. A test thus knows, with
no sleep, that its calls are inside the decision when it sends a signal.

Usage: python -m tests.gated_serve SERVE_ARGS...
"""

from __future__ import annotations

import sys
import threading

from personabid import app
from personabid.cli import main
from personabid.decision import pipeline
from personabid.decision.pipeline import Decider, Decision
from personabid.openrtb.request import BidRequest

GATE_SECONDS = 60.0  # a test that never releases still ends
_released = threading.Event()
_armed = threading.Event()  # set once the server is ready: its own warm-up decisions pass freely
_output = threading.Lock()


def _read_commands() -> None:
    for line in sys.stdin:
        if line.strip() == "release":
            _released.set()


_decide = pipeline.Decider.decide


def _gated_decide(self: Decider, request: BidRequest) -> Decision:
    if _armed.is_set():
        with _output:  # decisions on several threads: one whole line each
            sys.stdout.write(f"entered {request.id}\n")
            sys.stdout.flush()
        _released.wait(GATE_SECONDS)
    return _decide(self, request)


_load = app.BidServer.load


async def _load_then_arm(self: app.BidServer) -> None:
    await _load(self)
    _armed.set()


if __name__ == "__main__":
    threading.Thread(target=_read_commands, daemon=True).start()
    pipeline.Decider.decide = _gated_decide  # type: ignore[method-assign]
    app.BidServer.load = _load_then_arm  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
