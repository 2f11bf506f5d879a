"""The server's event log: what reports and training need of every bid and what became of it.

JSON Lines in schema 2 (personabid.bidrecord makes every line): a "bid" line for each bid sent (sampled
per auction at the bid_log_sample rate), a "win" line at the first win or billing notice of a bid (its
record again, with the clearing price: what training reads as an impression), "billing", "loss" and
"click" lines for the notices, and "conversion" lines for the advertisers' orders. User ids arrive here
already pseudonymised.

One file per UTC day of the server's clock at write time, beside the `event_log` setting's name:
events.jsonl names var/demo/events-2026-11-30.jsonl, events-2026-12-01.jsonl, ... Each worker appends to
the day's file (whole lines, one write each, so that workers' lines never interleave); nothing is ever
renamed, so a reader can take the files of past days while today's grows.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from personabid.bidrecord import (
    BidRecord,
    billing_line,
    click_line,
    conversion_line,
    loss_line,
    unknown_win_line,
)
from personabid.conversions import Conversion
from personabid.decision.pipeline import Decision
from personabid.spend.control import Notification

DAY = 86_400


def day_path(path: Path, now: float) -> Path:
    """The file of the UTC day of `now` for the log named `path`: <dir>/<stem>-YYYY-MM-DD<suffix>."""
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    return path.with_name(f"{path.stem}-{day}{path.suffix}")


def keeps_auction(request_id: str, sample: float) -> bool:
    """Whether an auction's bids are among the share `sample` of auctions the log keeps "bid" lines of.

    Decided by a hash of the request id, so that all of an auction's bids are kept or none, and every
    worker decides alike."""
    if sample >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < sample * 2**64


class EventLog:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time, bid_sample: float = 1.0) -> None:
        if not 0.0 < bid_sample <= 1.0:
            raise ValueError(f"bid_sample={bid_sample}: expected (0, 1]")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.bid_sample = bid_sample
        self._clock = clock
        self._lock = threading.Lock()
        self._handle: BinaryIO | None = None
        self._day = -1  # the UTC day number (unix seconds // DAY) of the open file

    def current_path(self) -> Path:
        """The file lines written now go to."""
        return day_path(self.path, self._clock())

    def bids(self, decision: Decision) -> None:
        """The "bid" lines of a decision's bids that spend control recorded, if its auction is sampled."""
        if not keeps_auction(decision.request_id, self.bid_sample):
            return
        lines = [bid.record.bid_line(self.bid_sample) for bid in decision.bids if bid.record is not None]
        if lines:
            self._write(lines)

    def record(self, note: Notification, record: BidRecord | None, status: str) -> None:
        """The lines a notice adds (status as the Notifier's EventSink is given it): a win line for the
        first win or billing notice of a bid, a billing line for every billing notice, a loss or a click
        line for those."""
        lines = []
        first_bill = status == "applied" and note.type in ("win", "impression")
        if first_bill and record is not None:
            lines.append(record.win_line(note.bid_id, note.price, note.ts))
        elif first_bill:
            lines.append(
                unknown_win_line(
                    note.ts, note.auction_id, note.imp_id, note.bid_id, note.campaign_id, note.price
                )
            )
        if note.type == "impression":
            lines.append(
                billing_line(note.ts, note.auction_id, note.imp_id, note.bid_id, note.campaign_id, note.price)
            )
        elif note.type == "loss" and status == "applied":
            lines.append(
                loss_line(
                    note.ts,
                    note.auction_id,
                    note.imp_id,
                    note.bid_id,
                    note.campaign_id,
                    note.loss_reason,
                    note.price,  # a loss notice's price is the exchange's minimum to win, 0: not given
                    record,
                )
            )
        elif note.type == "click" and status == "applied":
            lines.append(click_line(note.ts, note.auction_id, note.imp_id, note.bid_id, note.campaign_id))
        if lines:
            self._write(lines)

    def conversion(self, conversion: Conversion, arms: tuple[str, ...]) -> None:
        c = conversion
        self._write(
            [
                conversion_line(
                    c.ts,
                    advertiser=c.advertiser,
                    user=c.user,
                    order_id=c.order_id,
                    value=c.value,
                    currency=c.currency,
                    value_usd=c.value_usd,
                    arms=arms,
                    request_id=c.request_id,
                    imp_id=c.imp_id,
                    campaign=c.campaign,
                )
            ]
        )

    def _write(self, lines: list[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with self._lock:
            now = self._clock()
            day = int(now // DAY)
            if day != self._day or self._handle is None:
                if self._handle is not None:
                    self._handle.close()
                # Unbuffered, in append mode: each call is one write(2) at the file's end, so that lines
                # of workers appending to the same file never interleave.
                self._handle = day_path(self.path, now).open("ab", buffering=0)
                self._day = day
            self._handle.write(data)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
