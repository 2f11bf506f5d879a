"""The server's event log: impressions (from wins) and clicks, appended for training to read.

Impressions are the BidRecord the decision path made when it bid (one per won impression, with the
features it computed and "click": 0); clicks and conversions follow as records of their own, which the
reader joins onto their impressions. personabid.bidrecord writes both; training/events.py documents the
format. User ids arrive here already pseudonymised.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from personabid.bidrecord import BidRecord, event_line
from personabid.spend.control import Notification


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, note: Notification, record: BidRecord | None) -> None:
        """Append what `note` adds to the log: an impression for the first win or billed impression of a
        known bid (`record`, the bid's), a click or conversion record for those."""
        if note.type in ("win", "impression") and record is not None:
            # The record keeps the moment of the decision, not of the notice: the hour features must be
            # those the model scored the bid with. The price is the clearing price when the notice has one.
            line = replace(record, price=note.price).log_line() if note.price > 0 else record.log_line()
        elif note.type in ("click", "conversion"):
            line = event_line(note.type, note.ts, note.auction_id, note.imp_id, note.campaign_id)
        else:
            return
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.close()
