"""Frequency caps read from memory: a local view of how often users saw campaigns, no round trip per bid.

Views are recorded in Redis when their wins are notified (RedisStore.add_view, on the notice path) and,
by the worker that applied the notice, in its local view at once. A decision counts a user's views from
the local view only. The keeper (flusher.py) refreshes, every `frequency_refresh_seconds`, the users the
decisions asked about since its last refresh (up to `max_due` of them), with every view Redis holds of
them: so a user's views known to a worker are all those recorded anywhere before its last refresh of
that user, plus those it recorded itself. A user the view does not hold counts as what it knows (none),
and is read at the next refresh.

Bound on overshoot: a (user, campaign) pair goes over its cap only by the views other workers recorded
since this worker last read that user: within one refresh period (plus the time wins take to arrive, as
without leases) at most (workers - 1) x the views one worker wins for the user in that time, and for a
user new to the workers at most (workers - 1) x the cap (each worker stops at the cap with the views it
knows). Memory: at most `max_users` users, the least recently asked about going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class LocalViews:
    def __init__(self, max_users: int = 100_000, max_due: int = 10_000) -> None:
        self.max_users = max_users
        self.max_due = max_due
        self._lock = threading.Lock()
        self._users: OrderedDict[str, dict[str, list[float]]] = OrderedDict()
        self._due: dict[str, None] = {}  # users asked about since the last refresh, in order

    def knows(self, user: str) -> bool:
        """Whether this worker holds views of `user`; either way the user is read again at the next
        refresh, as `counts` would have them."""
        with self._lock:
            if len(self._due) < self.max_due:
                self._due[user] = None
            return user in self._users

    def counts(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        """How often `user` saw each campaign within its window, as far as this worker knows."""
        with self._lock:
            if len(self._due) < self.max_due:
                self._due[user] = None
            seen = self._users.get(user)
            if seen is None:
                return [0] * len(campaigns)
            self._users.move_to_end(user)
            return [
                sum(1 for t in seen.get(c, ()) if t > now - w)
                for c, w in zip(campaigns, windows, strict=True)
            ]

    def add(self, user: str, campaign: str, now: float) -> None:
        with self._lock:
            self._seen(user).setdefault(campaign, []).append(round(now, 6))

    def due(self) -> list[str]:
        """The users to read again, and none until they are asked about again."""
        with self._lock:
            users, self._due = list(self._due), {}
            return users

    def fill(self, fetched: dict[str, dict[str, list[float]]]) -> None:
        """Take what Redis holds of these users, keeping the views added here while it was read."""
        with self._lock:
            for user, campaigns in fetched.items():
                local = self._users.get(user, {})
                merged: dict[str, list[float]] = {}
                for campaign in campaigns.keys() | local.keys():
                    times = {round(t, 6) for t in campaigns.get(campaign, ())}
                    times.update(local.get(campaign, ()))
                    merged[campaign] = sorted(times)
                if merged or user in self._users:
                    self._seen(user).clear()
                    self._users[user] = merged

    def _seen(self, user: str) -> dict[str, list[float]]:
        seen = self._users.get(user)
        if seen is None:
            while len(self._users) >= self.max_users:
                self._users.popitem(last=False)
            seen = self._users[user] = {}
        else:
            self._users.move_to_end(user)
        return seen
