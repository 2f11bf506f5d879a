"""Worst overspend of workers racing through a real Redis for a campaign's last dollars.

Run: .venv/bin/python benchmarks/spend_race.py [--races 10] [--workers 4]
Starts its own redis-server on 127.0.0.1 (Debian package redis-server); prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import RedisServer
from tests.spend_race import MAX_BID, race


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--budget", type=float, default=0.5, help="USD")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            results = [race(server.url, f"race-{i}", args.budget, args.workers) for i in range(args.races)]
        finally:
            server.stop()
    overspend = [o for o, _ in results]
    print(
        json.dumps(
            {
                "races": args.races,
                "workers": args.workers,
                "budget_usd": args.budget,
                "max_bid_cpm": MAX_BID,
                "wins": [w for _, w in results],
                "overspend_usd": overspend,
                "worst_overspend_percent_of_budget": max(overspend) / args.budget * 100,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
