"""Worst overspend of workers racing through a real Redis for a campaign's last dollars, with a Redis call
per bid and spending leases; and what one reservation costs the bidder each way.

Run: .venv/bin/python benchmarks/spend_race.py [--races 10] [--workers 4] [--reserves 5000]
Starts its own redis-server on 127.0.0.1 (Debian package redis-server); prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from personabid.spend.control import SpendControl, SpendSettings
from personabid.spend.redis_store import RedisStore
from tests.bid_records import bid_record
from tests.conftest import RedisServer
from tests.spend_race import MAX_BID, ROWS, _table, race


def reserve_micros(url: str, leases: bool, count: int) -> dict[str, float]:
    """Microseconds per reserve() on one worker (budget never binding), and with leases the keeper's
    cost per bid of writing them back, which is off the decision path."""
    store = RedisStore(url, timeout=1.0)
    spend = SpendControl(store, SpendSettings(leases=leases))
    table = _table(f"timing-{leases}", budget=1e9)
    records = [bid_record(f"t{leases}{i}:1") for i in range(count)]
    spend.budget_left(table, ROWS)
    spend.keep()  # with leases: a slice of the budget is in hand before the clock starts
    started, cpu = time.perf_counter(), time.process_time()
    for i, record in enumerate(records):
        if not spend.reserve(table, 0, 2.0, f"t{leases}{i}:1", record):
            raise RuntimeError("a reservation was refused: the timing would not be of the bid path")
    out = {
        "reserve_us": (time.perf_counter() - started) / count * 1e6,
        "reserve_cpu_us": (time.process_time() - cpu) / count * 1e6,
    }
    if leases:
        started, cpu = time.perf_counter(), time.process_time()
        spend.close()
        out["flush_us_per_bid"] = (time.perf_counter() - started) / count * 1e6
        out["flush_cpu_us_per_bid"] = (time.process_time() - cpu) / count * 1e6
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", type=float, default=0.5, help="USD")
    parser.add_argument("--reserves", type=int, default=1000, help="reservations timed each way")
    args = parser.parse_args()
    report: dict[str, object] = {"races": args.races, "workers": args.workers, "budget_usd": args.budget}
    report["max_bid_cpm"] = MAX_BID
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            report["reserve_script"] = reserve_micros(server.url, False, args.reserves)
            report["reserve_lease"] = reserve_micros(server.url, True, args.reserves)
            for name, leases in (("per_bid", False), ("leases", True)):
                results = [
                    race(server.url, f"{name}-{i}", args.budget, args.workers, leases=leases)
                    for i in range(args.races)
                ]
                overspend = [o for o, _ in results]
                report[name] = {
                    "wins": [w for _, w in results],
                    "overspend_usd": overspend,
                    "worst_overspend_percent_of_budget": max(overspend) / args.budget * 100,
                    "worst_underspend_percent_of_budget": -min(overspend) / args.budget * 100,
                }
        finally:
            server.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
