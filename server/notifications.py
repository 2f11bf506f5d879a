"""Win, loss, impression, click and conversion notices: checked, applied to the spend state, and appended
to the event log that training reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from personabid.bidrecord import BidRecord
from personabid.decision.currency import USD, Currencies
from personabid.errors import InvalidRequest
from personabid.spend.control import MODES, Notification, SpendControl, validate_notification

log = logging.getLogger(__name__)

# Called with each applied notification and, when the bid was known, the record it was made with.
EventSink = Callable[[Notification, BidRecord | None], None]


@dataclass
class Tally:
    """What became of the notices of one call: the caller's acknowledgement."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


class Notifier:
    """Applies notices in order. StateUnavailable propagates: the caller answers UNAVAILABLE, and what was
    applied before it stays applied (a resend is deduplicated)."""

    def __init__(
        self,
        spend: SpendControl,
        sink: EventSink,
        observe: Callable[[str, str], None],
        currencies: Currencies | None = None,
    ) -> None:
        self._spend = spend
        self._sink = sink
        self._observe = observe  # (type, outcome) for metrics
        # Bids priced in another currency (the request's `cur`) win in it: their notices are converted
        # to USD, which budgets are kept in, at the same table's rate.
        self._currencies = currencies or Currencies()

    def handle(self, note: Notification, tally: Tally, where: str) -> None:
        """Check `note` (its fields named under `where` in a refusal), apply it, and log it."""
        if note.cur not in ("", USD):
            in_usd = self._currencies.to_usd(note.price, note.cur)
            if in_usd is not None:
                note = replace(note, price=in_usd, cur="")
        try:
            validate_notification(note, where)
        except InvalidRequest as exc:
            tally.rejected += 1
            tally.errors.append(str(exc))
            self._observe(note.type if note.type in MODES else "unknown", "rejected")
            return
        status, record = self._spend.apply(note)
        if status == "duplicate":
            tally.duplicates += 1
            self._observe(note.type, "duplicate")
            return
        tally.accepted += 1
        self._observe(
            note.type,
            "accepted" if record is not None or note.type in ("click", "conversion") else "unknown_bid",
        )
        if status == "applied":
            self._sink(note, record)
