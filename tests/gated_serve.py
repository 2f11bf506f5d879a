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
from personabid.decision.request import AuctionRequest

GATE_SECONDS = 60.0  # a test that never releases still ends
_released = threading.Event()
_armed = threading.Event()  # set once the server is ready: its own warm-up decisions pass freely


def _read_commands() -> None:
    for line in sys.stdin:
        if line.strip() == "release":
            _released.set()


_decide = pipeline.Decider.decide


def _gated_decide(self: Decider, request: AuctionRequest) -> Decision:
    if _armed.is_set():
        print(f"entered {request.id}", flush=True)
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
