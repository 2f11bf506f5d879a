"""Synthetic event logs (schema v2, as the server writes them) for the KPI report's tests and benchmark.

- `Log`: a builder of one auction's lines at a time (bid, win, billing, click, conversion), for logs whose
  every case is chosen by hand;
- `random_log`: a seeded log of auctions over users, campaigns and experiment arms, with sampled bid lines,
  billing, clicks and conversions (some repeating an order id, some naming their bid);
- `write_days`: the lines into one file per UTC day, named as the server names them;
- `demo_campaigns`: the lines with their campaigns and advertisers renamed to the demo index's, so that a
  report finds their budgets;
- `write_columns`: a large log written fast (numpy columns to JSON Lines through Polars, or to Parquet),
  for the benchmark.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from personabid.artifact import resolve
from personabid.index.campaigns import CampaignTable

DAY = 86_400.0
DAY0 = 20_000 * DAY  # 2024-10-04 00:00 UTC: a fixed day start
CAMPAIGNS = {"c1": "adv-a", "c2": "adv-a", "c3": "adv-b", "c4": "adv-c"}
BUDGETS = {"c1": 100.0, "c2": 50.0, "c3": 200.0}  # c4: no budget
ARMS = (("bidmult:control", "bidmult:double"), ("model:base", "model:new"))
COUNTRIES = ("USA", "DEU", "FRA")
SOURCES = (("profile",), ("segments", "context"), ("context",), ())


@dataclass
class Log:
    """Lines of a log, built auction by auction."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    auctions: int = 0

    def bid(
        self,
        ts: float,
        campaign: str,
        *,
        user: str = "",
        price: float = 2.0,
        arms: Sequence[str] = (),
        country: str = "USA",
        devicetype: int = 4,
        sources: Sequence[str] = ("profile",),
        sample: float = 1.0,
        logged: bool = True,
    ) -> dict[str, Any]:
        """A bid (its line unless `logged` is False: a bid the sampling left out). Returns its record."""
        self.auctions += 1
        record = {
            "request_id": f"r{self.auctions}",
            "imp_id": "1",
            "user": user,
            "campaign": campaign,
            "advertiser": CAMPAIGNS.get(campaign, ""),
            "category": "IAB3",
            "devicetype": devicetype,
            "os": "ios",
            "country": country,
            "w": 300,
            "h": 250,
            "match": 0.5,
            "tags": ["interest:x"],
            "pctr": 0.01,
            "price": price,
            "model": "m1",
            "sources": list(sources),
            "arms": sorted(arms),
        }
        if logged:
            self.lines.append({"v": 2, "event": "bid", "ts": ts, **record, "sample": sample})
        return {"ts": ts, **record}

    def win(self, bid: dict[str, Any], clearing: float, notice_delay: float = 1.0) -> None:
        record = {k: v for k, v in bid.items() if k != "ts"}
        self.lines.append(
            {
                "v": 2,
                "event": "win",
                "ts": bid["ts"],
                **record,
                "price": clearing,
                "bid_price": bid["price"],
                "notice_ts": bid["ts"] + notice_delay,
            }
        )

    def billing(self, bid: dict[str, Any], delay: float = 2.0) -> None:
        self.lines.append(
            {"v": 2, "event": "billing", "ts": bid["ts"] + delay, **_identity(bid), "price": 0.0}
        )

    def loss(self, bid: dict[str, Any], delay: float = 1.0) -> None:
        self.lines.append(
            {
                "v": 2,
                "event": "loss",
                "ts": bid["ts"] + delay,
                **_identity(bid),
                "loss_reason": 102,
                "min_to_win": 0,
            }
        )

    def click(self, bid: dict[str, Any], delay: float = 30.0) -> None:
        self.lines.append({"v": 2, "event": "click", "ts": bid["ts"] + delay, **_identity(bid)})

    def conversion(
        self,
        ts: float,
        advertiser: str,
        order_id: str,
        value_usd: float,
        *,
        user: str = "",
        arms: Sequence[str] = (),
        bid: dict[str, Any] | None = None,
    ) -> None:
        line: dict[str, Any] = {
            "v": 2,
            "event": "conversion",
            "ts": ts,
            "advertiser": advertiser,
            "user": user,
            "order_id": order_id,
            "value": value_usd,
            "currency": "USD",
            "value_usd": value_usd,
            "arms": sorted(arms),
            "request_id": bid["request_id"] if bid else "",
            "imp_id": bid["imp_id"] if bid else "",
            "campaign": bid["campaign"] if bid else "",
        }
        self.lines.append(line)


def _identity(bid: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": bid["request_id"],
        "imp_id": bid["imp_id"],
        "bid_id": f"{bid['request_id']}-{bid['campaign']}",
        "campaign": bid["campaign"],
    }


def random_log(
    seed: int,
    auctions: int,
    *,
    days: float = 1.0,
    users: int = 12,
    sample: float = 0.5,
    billing: bool = True,
) -> list[dict[str, Any]]:
    """A seeded log of `auctions` auctions over `days` days from DAY0, in time order per kind of line.

    Each auction's bid line is kept with probability `sample` (whole auctions, as the server samples);
    about half the bids win, most wins are billed (all of them when `billing`; none otherwise), some are
    clicked; users convert now and then on an advertiser they saw, sometimes again, sometimes repeating an
    order id, sometimes naming the bid, sometimes days later."""
    rng = np.random.default_rng(seed)
    log = Log()
    campaigns = sorted(CAMPAIGNS)
    orders = 0
    times = np.sort(DAY0 + rng.random(auctions) * days * DAY)
    for ts in times:
        user = f"p{rng.integers(users):03d}" if rng.random() < 0.85 else ""
        arms = [pair[rng.integers(2)] for pair in ARMS if rng.random() < 0.7]
        bid = log.bid(
            float(np.round(ts, 3)),
            campaigns[rng.integers(len(campaigns))],
            user=user,
            price=float(np.round(rng.uniform(0.5, 4.0), 4)),
            arms=arms,
            country=COUNTRIES[rng.integers(len(COUNTRIES))],
            devicetype=int(rng.choice([1, 2, 4, 5])),
            sources=SOURCES[rng.integers(len(SOURCES))],
            sample=sample,
            logged=bool(rng.random() < sample),
        )
        if rng.random() < 0.4:
            log.loss(bid)
            continue
        log.win(
            bid,
            float(np.round(bid["price"] * rng.uniform(0.3, 1.0), 4)),
            notice_delay=float(rng.uniform(0, 5)),
        )
        if billing and rng.random() < 0.9:
            log.billing(bid)
        clicked = rng.random() < 0.25
        if clicked:
            log.click(bid, delay=float(rng.uniform(1, 600)))
        if rng.random() < 0.3:
            orders += 1
            delay = float(rng.choice([60.0, 3_600.0, 30_000.0, 2.5 * DAY, 9 * DAY]))
            named = bid if rng.random() < 0.2 else None
            log.conversion(
                bid["ts"] + delay,
                bid["advertiser"],
                f"o{orders}",
                float(np.round(rng.uniform(5, 120), 2)),
                user=user if named is None or rng.random() < 0.5 else "",
                arms=arms,
                bid=named,
            )
            if rng.random() < 0.2:  # the site sends the postback again
                log.conversion(
                    bid["ts"] + delay + 5.0, bid["advertiser"], f"o{orders}", 1.0, user=user, arms=arms
                )
    return log.lines


def day_name(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def write_days(directory: Path, lines: Iterable[dict[str, Any]], stem: str = "events") -> list[Path]:
    """The lines in one JSON Lines file per UTC day of their time (`<stem>-YYYY-MM-DD.jsonl`), in order."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    for line in lines:
        files.setdefault(day_name(line["ts"]), []).append(json.dumps(line, separators=(",", ":")))
    paths = []
    for day, text in sorted(files.items()):
        path = directory / f"{stem}-{day}.jsonl"
        path.write_text("\n".join(text) + "\n")
        paths.append(path)
    return paths


def write_lines(path: Path, lines: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    return path


# ---- large logs, fast -----------------------------------------------------------------------------------


def columns(events: int, seed: int = 15, campaigns: int = 1_000, users: int = 200_000) -> pa.Table:
    """About `events` lines of a day's log as Arrow columns: auctions of one bid each, whose bid line is kept
    at sample 0.5, that win half the time (a win and a billing line), are clicked 2 % of the time, convert
    0.5 % of the time; spread over 24 hours. Lines are grouped by kind, each kind in time order."""
    rng = np.random.default_rng(seed)
    # Lines per auction: 0.5 bid + 0.5 loss-or-win + 0.5 * (billing) + 0.5 * 0.02 click + conversions.
    auctions = int(events / (0.5 + 1.0 + 0.5 + 0.01 + 0.0025))
    ts = np.sort(DAY0 + rng.random(auctions) * DAY)
    campaign = rng.integers(campaigns, size=auctions)
    advertiser = campaign // 10
    user = rng.integers(users, size=auctions)
    country = rng.integers(len(COUNTRIES), size=auctions)
    device = rng.choice(np.array([1, 2, 4, 5]), size=auctions)
    arm = rng.integers(2, size=auctions)
    price = np.round(rng.uniform(0.5, 4.0, size=auctions), 4)
    kept = rng.random(auctions) < 0.5
    won = rng.random(auctions) < 0.5
    clicked = won & (rng.random(auctions) < 0.02)
    converted = won & (rng.random(auctions) < 0.005)
    auction_ids = np.arange(auctions)

    def part(kind: str, rows: np.ndarray, shift: np.ndarray | float = 0.0, **extra: Any) -> pa.Table:
        n = len(rows)
        data: dict[str, Any] = {
            "v": pa.array(np.full(n, 2, np.int32)),
            "event": pa.repeat(pa.scalar(kind), n),
            "ts": pa.array(ts[rows] + shift),
            "request_id": pc_str("r", auction_ids[rows]),
            "imp_id": pa.repeat(pa.scalar("1"), n),
            "campaign": pc_str("c", campaign[rows]),
        }
        data.update(extra)
        return pa.table(data)

    def context(rows: np.ndarray) -> dict[str, Any]:
        return {
            "user": pc_str("p", user[rows]),
            "advertiser": pc_str("adv", advertiser[rows]),
            "country": pa.array(np.array(COUNTRIES)[country[rows]]),
            "devicetype": pa.array(device[rows].astype(np.int32)),
            "sources": one_each(pa.repeat(pa.scalar("profile"), len(rows))),
            "arms": one_each(pc.if_else(pa.array(arm[rows] == 0), "bidmult:control", "bidmult:double")),
        }

    bids, wins = np.flatnonzero(kept), np.flatnonzero(won)
    losses = np.flatnonzero(~won)
    tables = [
        part(
            "bid",
            bids,
            price=pa.array(price[bids]),
            sample=pa.array(np.full(len(bids), 0.5)),
            **context(bids),
        ),
        part(
            "win",
            wins,
            price=pa.array(np.round(price[wins] * 0.7, 4)),
            notice_ts=pa.array(ts[wins] + 1.0),
            **context(wins),
        ),
        part("billing", wins, 2.0),
        part("loss", losses, 1.0),
        part("click", np.flatnonzero(clicked), 30.0),
    ]
    conversions = np.flatnonzero(converted)
    tables.append(
        part(
            "conversion",
            conversions,
            3_600.0,
            user=pc_str("p", user[conversions]),
            advertiser=pc_str("adv", advertiser[conversions]),
            order_id=pc_str("o", conversions),
            value_usd=pa.array(np.round(rng.uniform(5, 120, size=len(conversions)), 2)),
        ).drop_columns(["request_id", "imp_id", "campaign"])
    )
    return pa.concat_tables(tables, promote_options="default")


def one_each(values: pa.Array) -> pa.Array:
    """A list array of one string per row (`values`), built without a Python loop."""
    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def pc_str(prefix: str, numbers: np.ndarray) -> pa.Array:
    """prefix + decimal number, as an Arrow string array, without a Python loop."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), "")


def write_columns(path: Path, table: pa.Table) -> Path:
    """`table` as JSON Lines (path ending .jsonl; through Polars, which writes them in native code) or
    Parquet."""
    if path.suffix == ".parquet":
        pq.write_table(table, path, compression="zstd")
        return path
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame.write_ndjson(path)
    return path


def demo_campaigns(lines: list[dict[str, Any]], index: Path) -> list[dict[str, Any]]:
    """The lines with their campaigns renamed to the demo index's first ones (and their advertisers)."""
    table = CampaignTable.load(resolve(index) / "campaigns.npz")
    names = {f"c{i + 1}": (str(table.campaign_id[i]), str(table.advertiser[i])) for i in range(4)}
    owners = {f"adv-{k}": names[c][1] for k, c in (("a", "c1"), ("b", "c3"), ("c", "c4"))}
    renamed = []
    for line in lines:
        line = dict(line)
        if line.get("campaign") in names:
            line["campaign"] = names[line["campaign"]][0]
        if line.get("advertiser") in owners:
            line["advertiser"] = owners[line["advertiser"]]
        renamed.append(line)
    return renamed
