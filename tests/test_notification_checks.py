"""A notice is converted without judgement at the wire and checked by the core, whose refusal names the
field and the value."""

from __future__ import annotations

from typing import Any

import pytest

from personabid import wire
from personabid.errors import InvalidRequest
from personabid.spend.control import Notification, validate_notification
from personabid.v1 import bidder_pb2 as pb


def event(**changes: Any) -> pb.Event:
    """A valid win, but for `changes`."""
    fields: dict[str, Any] = {"type": pb.Event.WIN, "auction_id": "a", "imp_id": "1", "campaign_id": "c"}
    return pb.Event(**{**fields, "price": 2.0, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": pb.Event.TYPE_UNSPECIFIED}, "events[3].type='TYPE_UNSPECIFIED': must be WIN, LOSS"),
        ({"type": 9}, "events[3].type=9: must be WIN, LOSS, IMPRESSION, CLICK or CONVERSION"),
        ({"auction_id": ""}, "events[3].auction_id='': must not be empty"),
        ({"campaign_id": ""}, "events[3].campaign_id='': must not be empty"),
        ({"price": -2.0}, "events[3].price=-2.0: must be a finite, non-negative CPM"),
        ({"price": float("nan")}, "events[3].price=nan: must be a finite, non-negative CPM"),
        ({"price": 0.0}, "events[3].price=0.0: a win carries its clearing price"),
        ({"cur": "EUR"}, "events[3].cur='EUR': unsupported currency; supported: ['USD']"),
        ({"timestamp_ms": -5}, "events[3].timestamp_ms=-5: must not be negative"),
    ],
)
def test_invalid_notice_is_refused_naming_field_and_value(changes: dict[str, Any], message: str) -> None:
    note = wire.to_notification(event(**changes))
    assert isinstance(note, Notification)
    with pytest.raises(InvalidRequest) as refused:
        validate_notification(note, "events[3]")
    assert str(refused.value).startswith(message)


def test_impression_without_a_price_is_billed_as_bid() -> None:
    note = wire.to_notification(event(type=pb.Event.IMPRESSION, price=0.0))
    assert isinstance(note, Notification)
    validate_notification(note)


def test_stamped_time_is_the_events_and_an_unstamped_one_is_left_for_the_server_clock() -> None:
    stamped = wire.to_notification(event(timestamp_ms=1_763_913_641_250))
    assert isinstance(stamped, Notification) and stamped.ts == 1_763_913_641.25
    # The Notifier stamps its arrival on the server's clock (tests/test_clock.py).
    unstamped = wire.to_notification(event())
    assert isinstance(unstamped, Notification) and unstamped.arrived == 0.0
