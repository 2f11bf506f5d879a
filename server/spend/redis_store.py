"""The spend state in Redis, shared by every worker and machine. Each check-and-change is one Lua script,
so that it is atomic: two workers racing for a campaign's last dollars cannot both win them.

Keys (prefix `pb:`): spend:{day}:{campaign} (micros, expires after two days), inflight:{campaign} (sorted
set of bid keys by expiry) with inflight_amount:{campaign} (hash of their amounts, and of their sum in
the field "total"), pending:{bid key}
(the bid's record, BidRecord.to_json), event:{identity} (dedupe, with a TTL), views:{user}:{campaign}
(sorted set of view times) with viewed:{user} (the set of campaigns the user saw), pacing (hash of
rates), lead:{term}.

Leases (spend/lease.py): lease:{day}:{campaign} (hash of worker -> unspent micros it holds), workers
(sorted set of worker -> when it was last heard of; a lease of a worker not heard of for the lease
timeout is reclaimed by the next LEASE of that campaign), flushed:{bid key} (a bid's FLUSH is applied
once), early:{bid key} (a notice that settled a bid before its worker flushed it: what FLUSH then does).
So that a campaign's committed total, spend + in flight + sum(leases), never exceeds its budget, LEASE
grants only what is free and FLUSH moves a bid's amount from its worker's lease into flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

from personabid.bidrecord import BidRecord
from personabid.spend.lease import LeaseAsk
from personabid.spend.store import Reservation, Settlement, StateUnavailable

DAY_TTL = 2 * 86_400
FLUSH_BATCH = 500  # bids a FLUSH script writes at most
LEASE_BATCH = 500  # campaigns a LEASE script grants slices of at most
Argv = list[str | int | float]  # a Lua script's ARGV, each sent as a string
# Queues one call of a script on a pipeline: (KEYS, ARGV).
ScriptCall = Callable[[Sequence[str], Argv], Any]

# The amounts in flight keep their sum in the field "total" (no bid key lacks a colon), so that a sweep
# costs what expired, not what is in flight. `sweep` forgets the bids of a campaign expired by `now` and
# returns what is still in flight.
_SWEEP_FUNCTION = """
local function sweep(inflight_key, amount_key, now)
  local expired = redis.call('ZRANGEBYSCORE', inflight_key, '-inf', now)
  for _, member in ipairs(expired) do
    local gone = redis.call('HGET', amount_key, member)
    if gone then
      -- As digits: Lua would write 0 as -0 and large amounts as 1e+15, which HINCRBY refuses.
      redis.call('HINCRBY', amount_key, 'total', string.format('%d', -tonumber(gone)))
      redis.call('HDEL', amount_key, member)
    end
  end
  redis.call('ZREMRANGEBYSCORE', inflight_key, '-inf', now)
  return tonumber(redis.call('HGET', amount_key, 'total') or '0')
end
"""
# The scripts of one campaign, whose KEYS[2] and KEYS[3] are its inflight keys and ARGV[1] the time.
_SWEEP = _SWEEP_FUNCTION + "local inflight = sweep(KEYS[2], KEYS[3], ARGV[1])\n"

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
local before = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('HINCRBY', KEYS[3], 'total', amount - before)
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
redis.call('ZADD', KEYS[5], 'GT', ARGV[5], ARGV[8])
redis.call('EXPIRE', KEYS[5], 172800)
return 1
"""
)

# KEYS: spend, inflight, inflight_amount, pending, event, billed, touched, early.
# ARGV: mode, key, price (-1: as reserved), event ttl, day ttl, now, campaign, early ttl
APPLY = """
if not redis.call('SET', KEYS[5], 1, 'NX', 'EX', ARGV[4]) then return {'duplicate', false} end
if ARGV[1] == 'mark' then return {'applied', false} end
if ARGV[1] == 'bill' and not redis.call('SET', KEYS[6], 1, 'NX', 'EX', ARGV[4]) then
  return {'billed already', false}
end
local held = redis.call('HGET', KEYS[3], ARGV[2])
local reserved = tonumber(held or '0')
if not held and redis.call('EXISTS', KEYS[4]) == 0 then
  -- No trace of the bid: it expired, or its worker has not flushed it yet. Leave word for FLUSH, which
  -- then caps the price at the bid (a bill) or frees its amount (a release).
  local word = 'release'
  if ARGV[1] == 'bill' then word = ARGV[3] end
  redis.call('SET', KEYS[8], word, 'EX', ARGV[8])
end
if held then redis.call('HINCRBY', KEYS[3], 'total', -reserved) end
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

# A batch of asks, each for a slice of one campaign's budget on one day. ARGV: now, worker, dead before, day
# ttl, then 5 an ask: day, campaign, budget, smallest slice, share of what is free. The keys are named here
# from those, as FLUSH names its keys: a fresh worker asks for the slices of hundreds of campaigns at once,
# and one script call for them all costs Redis and the worker a fraction of one call per campaign.
# Returns the micros granted an ask, 0 when none is free.
LEASE = (
    _SWEEP_FUNCTION
    + """
local now, worker, dead_before, day_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
redis.call('ZADD', 'pb:workers', now, worker)
local grants = {}
for i = 0, (#ARGV - 4) / 5 - 1 do
  local a = 4 + i * 5
  local day, campaign = ARGV[a + 1], ARGV[a + 2]
  local budget, smallest, share = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local inflight = sweep('pb:inflight:' .. campaign, 'pb:inflight_amount:' .. campaign, now)
  local lease_key = 'pb:lease:' .. day .. ':' .. campaign
  local held = 0
  local leases = redis.call('HGETALL', lease_key)
  for j = 1, #leases, 2 do
    local seen = redis.call('ZSCORE', 'pb:workers', leases[j])
    if seen and tonumber(seen) >= dead_before then
      held = held + tonumber(leases[j + 1])
    else
      redis.call('HDEL', lease_key, leases[j])  -- a worker not heard of for the lease timeout: reclaimed
    end
  end
  local spent = tonumber(redis.call('GET', 'pb:spend:' .. day .. ':' .. campaign) or '0')
  local free = budget - spent - inflight - held
  local grant = math.min(free, math.max(smallest, math.floor(free * share)))
  if grant > 0 then
    redis.call('HINCRBY', lease_key, worker, string.format('%d', grant))
    redis.call('EXPIRE', lease_key, day_ttl)
  else
    grant = 0
  end
  grants[i + 1] = grant
end
return grants
"""
)

# A batch of bids. ARGV: worker, day ttl, now, then 8 a bid: key, campaign, day, amount, expires, record, ttl,
# leased (1/0). The keys are named here from those, so that a batch sends half the arguments (the spend
# scripts already touch keys of several campaigns and bids, so none of them runs on a Redis Cluster).
# Returns a status a bid: 1, or 2 when its lease had been reclaimed (its amount then counts beyond what
# was granted).
FLUSH = """
local statuses = {}
for i = 0, (#ARGV - 3) / 8 - 1 do
  local a = 3 + i * 8
  local key, campaign, day, amount = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 4])
  local expires, ttl = ARGV[a + 5], ARGV[a + 7]
  local lease = 'pb:lease:' .. day .. ':' .. campaign
  local status = 1
  if redis.call('SET', 'pb:flushed:' .. key, 1, 'NX', 'EX', ttl) then
    if ARGV[a + 8] == '1' then
      local held = redis.call('HGET', lease, ARGV[1])
      if held then
        redis.call('HSET', lease, ARGV[1], string.format('%d', math.max(0, tonumber(held) - amount)))
      else
        status = 2
      end
    end
    local early = redis.call('GET', 'pb:early:' .. key)
    if early then
      redis.call('DEL', 'pb:early:' .. key)
      if early ~= 'release' then
        -- A bill arrived first and added its price (or nothing, "as bid"): spend the bid's due, the
        -- price capped at the bid, as APPLY does for a bid it knows.
        local added = math.max(tonumber(early), 0)
        local due = amount
        if tonumber(early) >= 0 and added <= amount then due = added end
        local spend = 'pb:spend:' .. day .. ':' .. campaign
        redis.call('INCRBY', spend, string.format('%d', due - added))
        redis.call('EXPIRE', spend, ARGV[2])
        redis.call('ZADD', 'pb:touched:' .. day, 'GT', ARGV[3], campaign)
        redis.call('EXPIRE', 'pb:touched:' .. day, ARGV[2])
      end
    else
      local amounts = 'pb:inflight_amount:' .. campaign
      redis.call('ZADD', 'pb:inflight:' .. campaign, expires, key)
      local before = tonumber(redis.call('HGET', amounts, key) or '0')
      redis.call('HSET', amounts, key, ARGV[a + 4])
      redis.call('HINCRBY', amounts, 'total', amount - before)
      redis.call('SET', 'pb:pending:' .. key, ARGV[a + 6], 'EX', ttl)
      -- Not "touched": with leases no decision reads the in-flight totals of other workers' caches, so
      -- their refreshes read only the campaigns whose spend moved (a notice, or a correction above).
    end
  end
  statuses[i + 1] = status
end
return statuses
"""

# KEYS: views, viewed. ARGV: now, window, campaign
VIEW = """
redis.call('ZADD', KEYS[1], ARGV[1], string.format('%.6f', tonumber(ARGV[1])))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local ttl = math.max(1, math.floor(tonumber(ARGV[2])) + 1)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], ARGV[3])
-- The set outlives the longest window of its campaigns.
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
"""

# KEYS: spend, inflight, inflight_amount. ARGV: now
SPENT = (
    _SWEEP
    + """
return {tonumber(redis.call('GET', KEYS[1]) or '0'), inflight}
"""
)


class RedisStore:
    def __init__(self, url: str, timeout: float = 0.05, early_seconds: float = 300.0) -> None:
        # Short timeouts and no retries: a bid must be answered within tmax even when Redis hangs (said
        # outright, so that no client library default can multiply the wait).
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._reserve = self._redis.register_script(RESERVE)
        self._apply = self._redis.register_script(APPLY)
        self._spent = self._redis.register_script(SPENT)
        self._lease = self._redis.register_script(LEASE)
        self._flush = self._redis.register_script(FLUSH)
        self._view = self._redis.register_script(VIEW)
        self._loaded: set[str] = set()  # digests of the scripts _pipelined has loaded
        # How long word of a notice that settled a bid before its worker flushed it is kept: far longer
        # than a flush takes, short enough that the words of notices for bids long expired go.
        self._early_ttl = max(1, int(early_seconds))

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except redis.RedisError as exc:
            raise StateUnavailable(f"redis: {exc}") from exc

    def _pipelined(self, script: Script, queue: Callable[[Pipeline, ScriptCall], None]) -> list[Any]:
        """The replies of the commands `queue` puts on a pipeline, calls of `script` among them, in one
        round trip. A Script handed a pipeline has redis-py ask SCRIPT EXISTS first, one round trip more
        on every call (the keeper flushes and refreshes several times a second): here the calls go as
        EVALSHA of the script's digest alone, the script loaded once before the store's first use of it.
        A Redis that lost its scripts since (restarted, SCRIPT FLUSH) answers NOSCRIPT to every call of
        the one script a pipeline holds, so none ran: the script is loaded again and the pipeline sent
        once more (what runs twice is the commands beside the script, which are idempotent)."""

        def send() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            queue(pipe, lambda keys, args: pipe.evalsha(script.sha, len(keys), *keys, *args))
            replies: list[Any] = pipe.execute()
            return replies

        if script.sha not in self._loaded:
            self._redis.script_load(script.script)
            self._loaded.add(script.sha)
        try:
            return send()
        except NoScriptError:
            self._redis.script_load(script.script)
            return send()

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
            f"pb:early:{key}",
        ]
        price_arg = -1 if price is None else price
        args: Argv = [mode, key, price_arg, max(1, int(ttl)), DAY_TTL, now, campaign, self._early_ttl]
        status, pending = self._call(lambda: self._apply(keys=keys, args=args))
        return status.decode(), BidRecord.from_json(pending) if pending else None

    def touched(self, day: str, since: float) -> list[str]:
        members = self._call(lambda: self._redis.zrangebyscore(f"pb:touched:{day}", since, "+inf"))
        return [m.decode() for m in members]

    def spent(self, day: str, campaigns: list[str], now: float) -> list[tuple[int, int]]:
        def queue(_pipe: Pipeline, spent: ScriptCall) -> None:
            for c in campaigns:
                spent([f"pb:spend:{day}:{c}", f"pb:inflight:{c}", f"pb:inflight_amount:{c}"], [now])

        return (
            [(int(s), int(i)) for s, i in self._call(lambda: self._pipelined(self._spent, queue))]
            if campaigns
            else []
        )

    def add_view(self, user: str, campaign: str, now: float, window: float) -> None:
        keys = [f"pb:views:{user}:{campaign}", f"pb:viewed:{user}"]
        self._call(lambda: self._view(keys=keys, args=[now, window, campaign]))

    def viewed(self, users: list[str]) -> dict[str, dict[str, list[float]]]:
        """Each user's view times by campaign, as far as their windows keep them: two round trips for
        any number of users (the local frequency view's refresh, spend/frequency.py)."""
        if not users:
            return {}

        def run() -> dict[str, dict[str, list[float]]]:
            pipe = self._redis.pipeline(transaction=False)
            for user in users:
                pipe.smembers(f"pb:viewed:{user}")
            pairs = [(u, m.decode()) for u, seen in zip(users, pipe.execute(), strict=True) for m in seen]
            for user, campaign in pairs:
                pipe.zrange(f"pb:views:{user}:{campaign}", 0, -1, withscores=True)
            out: dict[str, dict[str, list[float]]] = {u: {} for u in users}
            for (user, campaign), times in zip(pairs, pipe.execute(), strict=True):
                if times:
                    out[user][campaign] = [float(t) for _, t in times]
            return out

        result: dict[str, dict[str, list[float]]] = self._call(run)
        return result

    # -- leases (spend/lease.py) -----------------------------------------------------------------------

    def lease(self, worker: str, asks: list[LeaseAsk], now: float, dead_before: float) -> list[int]:
        """Grant `worker` a slice of each asked campaign's budget (one round trip): micros, 0 when none
        is free. Leases of workers last heard of before `dead_before` are reclaimed first."""
        if not asks:
            return []
        head: Argv = [now, worker, dead_before, DAY_TTL]

        def queue(_pipe: Pipeline, lease: ScriptCall) -> None:
            # Scripts of at most LEASE_BATCH asks: one script runs alone in Redis, so none runs long.
            for i in range(0, len(asks), LEASE_BATCH):
                args = list(head)
                for ask in asks[i : i + LEASE_BATCH]:
                    args += [ask.day, ask.campaign, ask.budget, ask.smallest, ask.share]
                lease([], args)

        return [int(g) for batch in self._call(lambda: self._pipelined(self._lease, queue)) for g in batch]

    def flush(self, worker: str, bids: list[tuple[Reservation, bool]], now: float) -> list[tuple[str, str]]:
        """Write bids reserved locally (with whether each came out of a lease): each one's amount moves
        from the worker's lease into flight and its record is kept for its win, in one round trip that
        also says the worker is alive. Returns the (day, campaign) whose lease had been reclaimed. A bid is
        applied once however often it is sent (a flush retried after an error)."""

        args: Argv = []
        for r, leased in bids:
            ttl = max(1, int(r.expires - r.now) + 1)
            args += [r.key, r.campaign, r.day, r.amount, r.expires, r.record.to_json(), ttl, int(leased)]

        def queue(pipe: Pipeline, flush: ScriptCall) -> None:
            pipe.zadd("pb:workers", {worker: now})
            # Scripts of at most FLUSH_BATCH bids: one script runs alone in Redis, so none runs long.
            for i in range(0, len(bids), FLUSH_BATCH):
                flush([], [worker, DAY_TTL, now, *args[i * 8 : (i + FLUSH_BATCH) * 8]])

        def run() -> list[Any]:
            return [status for batch in self._pipelined(self._flush, queue)[1:] for status in batch]

        statuses = self._call(run)
        return [
            (r.day, r.campaign) for (r, _), status in zip(bids, statuses, strict=True) if int(status) == 2
        ]

    def give_back(self, worker: str, leases: list[tuple[str, str]]) -> None:
        """Return the unspent leases of `worker` on (day, campaign): what they held is free again."""

        def run() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for day, campaign in leases:
                pipe.hdel(f"pb:lease:{day}:{campaign}", worker)
            pipe.zrem("pb:workers", worker)
            pipe.execute()

        self._call(run)

    def leases(self, day: str, campaign: str) -> dict[str, int]:
        """The leases held on a campaign's day budget, by worker (for tests and operators)."""
        held = self._call(lambda: self._redis.hgetall(f"pb:lease:{day}:{campaign}"))
        return {k.decode(): int(v) for k, v in held.items()}

    def may_have_views(self, user: str) -> bool:
        return True  # only a call would tell: views() asks

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

    def close(self) -> None:
        """Close the connections to Redis (the store is not used after)."""
        self._redis.close()
