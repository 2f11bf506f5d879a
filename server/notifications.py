"""Win, loss, impression, click and conversion notices: checked, applied to the spend state, and handed
on to the event log and the metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from personabid.bidrecord import BidRecord
from personabid.conversions import Conversion, ConversionNotice, check_conversion
from personabid.decision.currency import USD, Currencies
from personabid.errors import InvalidRequest
from personabid.spend.control import MODES, Notification, SpendControl, validate_notification

log = logging.getLogger(__name__)

# Called with each notice that changed something, the record its bid was made with when the bid was
# known, and its status: "applied", or "billed already" (a billing notice after the bid's win, or the
# other way round: counted as an impression, not billed again).
EventSink = Callable[[Notification, BidRecord | None, str], None]
# Called with each conversion counted (its first report) and the user's experiment arms.
ConversionSink = Callable[[Conversion, tuple[str, ...]], None]


@dataclass
class Tally:
    """What became of the notices of one call: the caller's acknowledgement."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    refusal: InvalidRequest | None = None  # the first refusal, for answers that name its field apart


def _no_arms(user: str) -> tuple[str, ...]:
    return ()


def _refuse_users(user: str) -> str:
    raise InvalidRequest("conversion.user", "(withheld)", "this server keeps no pseudonymisation key")


class Notifier:
    """Applies notices in order. StateUnavailable propagates: the caller answers UNAVAILABLE, and what was
    applied before it stays applied (a resend is deduplicated)."""

    def __init__(
        self,
        spend: SpendControl,
        sink: EventSink,
        observe: Callable[[str, str], None],
        currencies: Currencies | None = None,
        *,
        clock: Callable[[], float] = time.time,
        pseudonymize: Callable[[str], str] = _refuse_users,
        on_conversion: ConversionSink | None = None,
        arms_for_user: Callable[[str], tuple[str, ...]] = _no_arms,
    ) -> None:
        self._spend = spend
        self._sink = sink
        self._observe = observe  # (type, outcome) for metrics
        # Bids priced in another currency (the request's `cur`) win in it: their notices are converted
        # to USD, which budgets are kept in, at the same table's rate.
        self._currencies = currencies or Currencies()
        self._clock = clock  # the server's: stamps what arrives unstamped
        self._pseudonymize = pseudonymize
        self._on_conversion = on_conversion or (lambda conversion, arms: None)
        self._arms_for_user = arms_for_user

    def handle(self, note: Notification | ConversionNotice, tally: Tally, where: str) -> None:
        """Check `note` (its fields named under `where` in a refusal), apply it, and log it."""
        if isinstance(note, ConversionNotice):
            self._convert(note, tally, where)
            return
        if not note.arrived:
            note = replace(note, arrived=self._clock())
        if note.cur not in ("", USD):
            in_usd = self._currencies.to_usd(note.price, note.cur)
            if in_usd is not None:
                note = replace(note, price=in_usd, cur="")
        try:
            validate_notification(note, where)
        except InvalidRequest as exc:
            self._reject(tally, exc, note.type if note.type in MODES else "unknown")
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
        self._sink(note, record, status)

    def _convert(self, notice: ConversionNotice, tally: Tally, where: str) -> None:
        if not notice.arrived:
            notice = replace(notice, arrived=self._clock())
        try:
            conversion = check_conversion(notice, self._currencies, self._pseudonymize, where)
        except InvalidRequest as exc:
            self._reject(tally, exc, "conversion")
            return
        if not self._spend.first_time(conversion.dedupe_key):
            tally.duplicates += 1
            self._observe("conversion", "duplicate")
            return
        tally.accepted += 1
        self._observe("conversion", "accepted")
        arms = self._arms_for_user(conversion.user) if conversion.user else ()
        self._on_conversion(conversion, arms)

    def _reject(self, tally: Tally, error: InvalidRequest, kind: str) -> None:
        tally.rejected += 1
        tally.errors.append(str(error))
        self._observe(kind, "rejected")
        if tally.refusal is None:
            tally.refusal = error
