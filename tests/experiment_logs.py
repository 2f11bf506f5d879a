"""A small seeded v2 event log of an A/B experiment, for the tests of `personabid report experiment`.

Users (pseudonyms only: random hex, never a raw id) are split between the arms by their planned shares;
each takes part in a few auctions, bids are won, billed, clicked and some converted, every line recording
its arm the way the server does ("NAME:arm", sorted by experiment name, beside another experiment's arm).
A few requests carry no user (assigned per auction), one conversion is sent twice (one order id), and the
treatment arm clicks more often, so that the lift is visible. The lines are returned as well as written,
so that a test can compute its own reference from the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

START = 1_796_000_000.0  # a fixed day, so that file names and windows do not depend on today
CAMPAIGNS = tuple((f"cmp-{i:06d}", f"advertiser-{i % 2:05d}") for i in range(4))


def experiment_lines(
    *,
    seed: int = 5,
    users: int = 240,
    experiment: str = "bid-multiplier",
    arms: tuple[str, ...] = ("control", "double"),
    shares: tuple[float, ...] = (0.5, 0.5),
    click_rates: tuple[float, ...] = (0.08, 0.14),
    anonymous: int = 12,
    sample: float = 1.0,
) -> list[dict[str, Any]]:
    """The log's lines (dicts, in time order)."""
    rng = np.random.default_rng(seed)
    lines: list[dict[str, Any]] = []
    people = [(f"{rng.integers(2**63):016x}{rng.integers(2**63):016x}", True) for _ in range(users)]
    people += [("", False) for _ in range(anonymous)]
    request = 0
    for user, known in people:
        arm = int(rng.choice(len(arms), p=shares))
        auctions = 1 + int(rng.poisson(2.0)) if known else 1
        for _ in range(auctions):
            request += 1
            ts = START + request * 7.0
            campaign, advertiser = CAMPAIGNS[int(rng.integers(len(CAMPAIGNS)))]
            labels = sorted([f"{experiment}:{arms[arm]}", f"zz-other:{'ab'[request % 2]}"])
            record = {
                "request_id": f"req-{request}",
                "imp_id": "1",
                "user": user,
                "campaign": campaign,
                "advertiser": advertiser,
                "category": "IAB1",
                "devicetype": 4,
                "os": "ios",
                "country": "USA",
                "w": 300,
                "h": 250,
                "match": 0.5,
                "tags": [],
                "pctr": 0.02,
                "model": "m1",
                "sources": ["profile"] if known else ["context"],
                "arms": labels,
            }
            price = float(np.round(rng.uniform(0.5, 3.0), 3))
            lines.append({"v": 2, "event": "bid", "ts": ts, **record, "price": price, "sample": sample})
            if rng.random() >= 0.6:
                lines.append(
                    {
                        "v": 2,
                        "event": "loss",
                        "ts": ts + 1.0,
                        "request_id": record["request_id"],
                        "imp_id": "1",
                        "bid_id": "b1",
                        "campaign": campaign,
                        "loss_reason": 102,
                        "min_to_win": 0.0,
                        "arms": labels,
                        "user": user,
                    }
                )
                continue
            clearing = float(np.round(price * rng.uniform(0.5, 1.0), 3))
            lines.append(
                {
                    "v": 2,
                    "event": "win",
                    "ts": ts,
                    **record,
                    "price": clearing,
                    "bid_price": price,
                    "notice_ts": ts + 1.0,
                }
            )
            if rng.random() < 0.9:
                lines.append(
                    {
                        "v": 2,
                        "event": "billing",
                        "ts": ts + 2.0,
                        "request_id": record["request_id"],
                        "imp_id": "1",
                        "bid_id": "b1",
                        "campaign": campaign,
                        "price": 0.0,
                    }
                )
            else:
                continue  # not shown: neither clicked nor converted
            if rng.random() < click_rates[arm]:
                lines.append(
                    {
                        "v": 2,
                        "event": "click",
                        "ts": ts + 3.0,
                        "request_id": record["request_id"],
                        "imp_id": "1",
                        "bid_id": "b1",
                        "campaign": campaign,
                    }
                )
                if rng.random() < 0.5:
                    order = f"o-{request}"
                    value = float(np.round(rng.uniform(5.0, 80.0), 2))
                    conversion = {
                        "v": 2,
                        "event": "conversion",
                        "ts": ts + 4.0,
                        "advertiser": advertiser,
                        "user": user,
                        "order_id": order,
                        "value": value,
                        "currency": "USD",
                        "value_usd": value,
                        "arms": labels if known else [],
                        "request_id": record["request_id"],
                        "imp_id": "1",
                        "campaign": campaign,
                    }
                    lines.append(conversion)
                    if request % 5 == 0:  # the advertiser's site sent it twice
                        lines.append({**conversion, "ts": ts + 5.0})
    lines.sort(key=lambda line: line["ts"])
    return lines


def write_log(path: Path, lines: list[dict[str, Any]]) -> Path:
    """Write `lines` as JSON Lines to `path`; return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
