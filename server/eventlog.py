"""The server's event log: impressions (from wins) and clicks, appended for training to read.

Impression records follow the schema of personabid.training.events (one per won impression, with the
features the decision path computed and "click": 0). Clicks and conversions follow as their own records,
`{"v": 1, "event": "click", "ts": ..., "request_id": ..., "imp_id": ..., "campaign": ...}`, which the
reader joins onto their impressions. User ids arrive here already pseudonymised.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from personabid.spend.control import Notification
from personabid.training.events import VERSION

IMPRESSION_FIELDS = (
    "request_id", "imp_id", "user", "campaign", "advertiser", "category", "devicetype", "os", "country",
    "w", "h", "match", "tags", "pctr", "price", "model",
)  # fmt: skip


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, note: Notification, pending: dict[str, Any] | None) -> None:
        """Append what `note` adds to the log: an impression for the first win or billed impression of a
        known bid, a click or conversion record for those."""
        if note.type in ("win", "impression") and pending is not None:
            record = {
                "v": VERSION,
                # The moment of the decision, not of the notice: the hour features must be those the
                # model scored the bid with.
                "ts": pending["ts"],
                **{k: pending[k] for k in IMPRESSION_FIELDS if k in pending},
            }
            if note.price > 0:
                record["price"] = note.price
            record["click"] = 0
        elif note.type in ("click", "conversion"):
            record = {
                "v": VERSION,
                "event": note.type,
                "ts": note.ts,
                "request_id": note.auction_id,
                "imp_id": note.imp_id,
                "campaign": note.campaign_id,
            }
        else:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()
