"""The spend state in Redis, shared by every worker and machine. Each check-and-change is one Lua script,
so that it is atomic: two workers racing for a campaign's last dollars cannot both win them.

Keys (prefix `pb:`): spend:{day}:{campaign} (micros, expires after two days), inflight:{campaign} (sorted
set of bid keys by expiry) with inflight_amount:{campaign} (hash of their amounts), pending:{bid key}
(the bid's record, BidRecord.to_json), event:{identity} (dedupe, with a TTL), views:{user}:{campaign}
(sorted set of view times), pacing (hash of rates), lead:{term}.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from personabid.bidrecord import BidRecord
from personabid.spend.store import Reservation, Settlement, StateUnavailable

DAY_TTL = 2 * 86_400
Argv = list[str | int | float]  # a Lua script's ARGV, each sent as a string

_SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, member in ipairs(expired) do redis.call('HDEL', KEYS[3], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local inflight = 0
for _, amount in ipairs(redis.call('HVALS', KEYS[3])) do inflight = inflight + tonumber(amount) end
"""

# KEYS: spend, inflight, inflight_amount, pending, touched.
# ARGV: now, budget, key, amount, expires, record, ttl, campaign
RESERVE = (
    _SWEEP
    + """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local budget = tonumber(ARGV[2])
local amount = tonumber(ARGV[4])
if budget > 0 and spent + inflight + amount > budget then return 0 end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
redis.call('ZADD', KEYS[5], 'GT', ARGV[5], ARGV[8])
redis.call('EXPIRE', KEYS[5], 172800)
return 1
"""
)

# KEYS: spend, inflight, inflight_amount, pending, event, billed, touched.
# ARGV: mode, key, price (-1: as reserved), event ttl, day ttl, now, campaign
APPLY = """
if not redis.call('SET', KEYS[5], 1, 'NX', 'EX', ARGV[4]) then return {'duplicate', false} end
if ARGV[1] == 'mark' then return {'applied', false} end
if ARGV[1] == 'bill' and not redis.call('SET', KEYS[6], 1, 'NX', 'EX', ARGV[4]) then
  return {'billed already', false}
end
local reserved = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[7], 'GT', ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[7], ARGV[5])
if ARGV[1] == 'bill' then
  local price = tonumber(ARGV[3])
  -- A clearing price above the bid (a notice's price is the exchange's, not signed) spends the bid.
  if price < 0 or (reserved > 0 and price > reserved) then price = reserved end
  redis.call('INCRBY', KEYS[1], price)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
local pending = redis.call('GET', KEYS[4])
redis.call('DEL', KEYS[4])
return {'applied', pending}
"""

# KEYS: spend, inflight, inflight_amount. ARGV: now
SPENT = (
    _SWEEP
    + """
return {tonumber(redis.call('GET', KEYS[1]) or '0'), inflight}
"""
)


class RedisStore:
    def __init__(self, url: str, timeout: float = 0.05) -> None:
        # Short timeouts and no retries: a bid must be answered within tmax even when Redis hangs (said
        # outright, so that no client library default can multiply the wait).
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._reserve = self._redis.register_script(RESERVE)
        self._apply = self._redis.register_script(APPLY)
        self._spent = self._redis.register_script(SPENT)

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis: {exc}") from exc

    def reserve(self, reservation: Reservation) -> bool:
        r = reservation
        keys = [
            f"pb:spend:{r.day}:{r.campaign}",
            f"pb:inflight:{r.campaign}",
            f"pb:inflight_amount:{r.campaign}",
            f"pb:pending:{r.key}",
            f"pb:touched:{r.day}",
        ]
        ttl = max(1, int(r.expires - r.now) + 1)
        args: Argv = [r.now, r.budget, r.key, r.amount, r.expires, r.record.to_json(), ttl, r.campaign]
        return bool(self._call(lambda: self._reserve(keys=keys, args=args)))

    def apply(self, settlement: Settlement) -> tuple[str, BidRecord | None]:
        mode, event, ttl, day = settlement.mode, settlement.event, settlement.ttl, settlement.day
        campaign, key, price, now = settlement.campaign, settlement.key, settlement.price, settlement.now
        keys = [
            f"pb:spend:{day}:{campaign}",
            f"pb:inflight:{campaign}",
            f"pb:inflight_amount:{campaign}",
            f"pb:pending:{key}",
            f"pb:event:{event}",
            f"pb:billed:{key}",
            f"pb:touched:{day}",
        ]
        args: Argv = [mode, key, -1 if price is None else price, max(1, int(ttl)), DAY_TTL, now, campaign]
        status, pending = self._call(lambda: self._apply(keys=keys, args=args))
        return status.decode(), BidRecord.from_json(pending) if pending else None

    def touched(self, day: str, since: float) -> list[str]:
        members = self._call(lambda: self._redis.zrangebyscore(f"pb:touched:{day}", since, "+inf"))
        return [m.decode() for m in members]

    def spent(self, day: str, campaigns: list[str], now: float) -> list[tuple[int, int]]:
        def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for c in campaigns:
                self._spent(
                    keys=[f"pb:spend:{day}:{c}", f"pb:inflight:{c}", f"pb:inflight_amount:{c}"],
                    args=[now],
                    client=pipe,
                )
            return pipe.execute()

        return [(int(s), int(i)) for s, i in self._call(run)] if campaigns else []

    def add_view(self, user: str, campaign: str, now: float, window: float) -> None:
        key = f"pb:views:{user}:{campaign}"

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zadd(key, {f"{now:.6f}": now})
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.expire(key, max(1, int(window) + 1))
            pipe.execute()

        self._call(run)

    def views(self, user: str, campaigns: list[str], windows: list[float], now: float) -> list[int]:
        def run() -> list[int]:
            pipe = self._redis.pipeline(transaction=False)
            for campaign, window in zip(campaigns, windows, strict=True):
                pipe.zcount(f"pb:views:{user}:{campaign}", f"({now - window}", "+inf")
            return pipe.execute()

        return [int(n) for n in self._call(run)] if campaigns else []

    def pacing(self, campaigns: list[str]) -> list[float | None]:
        if not campaigns:
            return []
        rates = self._call(lambda: self._redis.hmget("pb:pacing", campaigns))
        return [float(r) if r is not None else None for r in rates]

    def set_pacing(self, rates: dict[str, float]) -> None:
        if rates:
            self._call(lambda: self._redis.hset("pb:pacing", mapping={k: repr(v) for k, v in rates.items()}))

    def lead(self, term: str, ttl: float) -> bool:
        return bool(self._call(lambda: self._redis.set(f"pb:lead:{term}", 1, nx=True, ex=max(1, int(ttl)))))

    def ping(self) -> None:
        self._call(self._redis.ping)
