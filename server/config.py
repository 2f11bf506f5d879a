"""Serving configuration: flags, then environment (PERSONABID_*), then an optional TOML file, then
defaults, in that order of precedence."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personabid.errors import ConfigError

ENV_PREFIX = "PERSONABID_"
CONFIG_ENV = "PERSONABID_CONFIG"
MAX_WORKERS = 64
PROFILE_STORES = ("embedded", "redis", "none")
PROFILE_IDS = ("buyeruid", "id", "ifa")  # user.buyeruid, user.id, device.ifa


@dataclass(frozen=True)
class Settings:
    grpc_addr: str = "127.0.0.1:50051"
    http_addr: str = "127.0.0.1:8080"  # the OpenRTB JSON door and the notice URLs
    # Where exchanges reach the HTTP door, for the notice URLs of bids (behind a balancer or TLS it is not
    # the listen address); empty: http:// and the address the door listens on.
    notice_base_url: str = ""
    metrics_addr: str = "127.0.0.1:9464"
    admin_addr: str = "127.0.0.1:50052"
    data_dir: Path = Path("var/demo")
    index_path: Path | None = None  # default: data_dir/index
    model_path: Path | None = None  # default: data_dir/model
    top_k: int = 100
    min_tmax_ms: int = 5
    grace_seconds: float = 10.0  # on SIGTERM, how long calls in flight get once the transport stops
    drain_seconds: float = 2.0  # before that, how long the server keeps answering while NOT_SERVING
    decision_threads: int = 0  # threads that run decisions off the event loop; 0: on the loop
    watch_seconds: float = 2.0  # how often the artifact roots are checked for a new version; 0 = never
    log_level: str = "INFO"
    seat: str = "personabid"
    pseudonym_key_file: Path | None = None  # default: data_dir/pseudonym.key
    redis_url: str = ""  # shared spend state, e.g. redis://127.0.0.1:6379/0; empty: in this process
    event_log: Path | None = None  # default: data_dir/events.jsonl
    inflight_seconds: float = 60.0  # a bid not notified by then stops counting against its budget
    # With redis_url: bids spend slices of the budgets leased from Redis, written back in the background
    # (README: Spend control); False: one Redis call per bid.
    spend_leases: bool = True
    workers: int = 1  # serving processes sharing the gRPC port (server/workers.py)
    # Caps on the in-process state that grows with traffic (README: "Memory under load").
    max_pending_bids: int = 200_000
    max_frequency_keys: int = 500_000
    max_dedupe_events: int = 1_000_000
    # The value of one unit of each currency in USD, for floors in other currencies and bids in a currency
    # the exchange asks for. A currency not listed is declined (no-bid 510), never guessed. In TOML a
    # table ([currencies] EUR = 1.08); in the environment "EUR=1.08,GBP=1.27". USD is always 1.
    currencies: dict[str, float] = dataclasses.field(default_factory=lambda: {"USD": 1.0})
    # User profiles (README: "Profiles"): the artifact root `personabid profiles build` writes; where they
    # are looked up ("embedded": that artifact, memory-mapped by every worker; "redis": redis_url, filled
    # by `personabid profiles push`, for profiles updated continuously; "none"); which request ids find a
    # user, first present first; the Redis lookup's timeout, after which the request is bid without it.
    profiles_path: Path | None = None  # default: data_dir/profiles
    profile_store: str = "embedded"
    profile_ids: str = "buyeruid,id,ifa"
    profile_timeout_ms: float = 5.0
    # The Redis that holds the profiles (profile_store "redis"); empty: redis_url. Profiles apart from the
    # spend state let an outage of theirs degrade bids to the context instead of stopping them (a spend
    # store that cannot be reached answers no-bid 506).
    profile_redis_url: str = ""
    # Pseudonyms of the people who asked to be forgotten (`personabid profiles forget`): never looked up,
    # never built again.
    profile_suppression: Path | None = None  # default: data_dir/profiles.suppressed
    # The user vector: blend_profile x the profile + blend_segments x the exchange's segments +
    # blend_context x the context, each part a unit vector first (README: "How a user is matched").
    blend_profile: float = 1.0
    blend_segments: float = 0.6
    blend_context: float = 0.4
    # A context-only vector is sparser than a profile, so its cosine with a persona is lower: campaigns'
    # similarity floors are scaled by this for it (1: no scaling).
    context_match_scale: float = 0.75
    # The measurement loop (README: "Measuring what was bought"). The server's clock runs this many times
    # faster than real time, from the moment it starts (1: real time): a market simulation passes a day
    # in minutes, and budgets, pacing, schedules and the event log all see the same compressed day.
    clock_speed: float = 1.0
    # The share of bids the event log records as "bid" lines (1: every bid); each line carries it, and
    # reports weight it by its inverse. Wins, notices, clicks and conversions are always recorded.
    bid_log_sample: float = 1.0
    # Last-touch attribution of a conversion to the user's last click on the advertiser's campaigns within
    # the click window, else to the last impression within the (shorter) view window.
    attribution_click_seconds: float = 7 * 86_400.0
    attribution_view_seconds: float = 86_400.0
    # A/B experiments in force: every *.toml file in this directory (README: "Experiments").
    experiments_path: Path | None = None  # default: data_dir/experiments

    def __post_init__(self) -> None:
        for name in ("grpc_addr", "http_addr", "metrics_addr", "admin_addr"):
            host, sep, port = getattr(self, name).rpartition(":")
            if not sep or not host or not port.isdigit() or int(port) > 65535:
                raise ConfigError(f"setting {name}={getattr(self, name)!r}: expected HOST:PORT")
        if not 1 <= self.top_k <= 10_000:
            raise ConfigError(f"setting top_k={self.top_k}: expected 1 to 10000")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"setting workers={self.workers}: expected 1 to {MAX_WORKERS}")
        for name in ("max_pending_bids", "max_frequency_keys", "max_dedupe_events"):
            if getattr(self, name) < 1:
                raise ConfigError(f"setting {name}={getattr(self, name)}: must be at least 1")
        if not 0 <= self.decision_threads <= 64:
            raise ConfigError(f"setting decision_threads={self.decision_threads}: expected 0 to 64")
        if self.notice_base_url and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.notice_base_url):
            raise ConfigError(
                f"setting notice_base_url={self.notice_base_url!r}: expected http(s)://HOST[:PORT][/PATH]"
            )
        for code, rate in self.currencies.items():
            if not re.match(r"^[A-Z]{3}$", code) or not (isinstance(rate, float) and 0 < rate < float("inf")):
                raise ConfigError(
                    f"setting currencies: {code}={rate!r}: expected an ISO-4217 code = a positive USD value"
                )
        if self.currencies.get("USD", 1.0) != 1.0:
            raise ConfigError(f"setting currencies: USD={self.currencies['USD']}: USD is worth 1 USD")
        if self.profile_store not in PROFILE_STORES:
            raise ConfigError(
                f"setting profile_store={self.profile_store!r}: expected one of {PROFILE_STORES}"
            )
        if self.profile_store == "redis" and not self.profiles_redis:
            raise ConfigError("setting profile_store='redis' needs profile_redis_url or redis_url")
        ids = [part.strip() for part in self.profile_ids.split(",")]
        if not ids or len(set(ids)) != len(ids) or not set(ids) <= set(PROFILE_IDS):
            raise ConfigError(
                f"setting profile_ids={self.profile_ids!r}: expected a comma-separated order of {PROFILE_IDS}"
            )
        for name in ("blend_profile", "blend_segments", "blend_context"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ConfigError(f"setting {name}={getattr(self, name)}: expected a finite weight >= 0")
        if not 0.0 < self.context_match_scale <= 1.0:
            raise ConfigError(f"setting context_match_scale={self.context_match_scale}: expected (0, 1]")
        if not 0.0 < self.clock_speed <= 100_000.0:
            raise ConfigError(f"setting clock_speed={self.clock_speed}: expected (0, 100000]")
        if not 0.0 < self.bid_log_sample <= 1.0:
            raise ConfigError(f"setting bid_log_sample={self.bid_log_sample}: expected (0, 1]")
        if not 0.0 < self.attribution_view_seconds <= self.attribution_click_seconds:
            raise ConfigError(
                f"settings attribution_view_seconds={self.attribution_view_seconds}, "
                f"attribution_click_seconds={self.attribution_click_seconds}: "
                "expected 0 < view window <= click window"
            )
        if not 0.0 < self.profile_timeout_ms <= 1000.0:
            raise ConfigError(f"setting profile_timeout_ms={self.profile_timeout_ms}: expected (0, 1000]")
        for name in ("min_tmax_ms", "grace_seconds", "drain_seconds", "watch_seconds", "inflight_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting {name}={getattr(self, name)}: must not be negative")

    @property
    def index(self) -> Path:
        return self.index_path or self.data_dir / "index"

    @property
    def model(self) -> Path:
        return self.model_path or self.data_dir / "model"

    @property
    def events(self) -> Path:
        return self.event_log or self.data_dir / "events.jsonl"

    @property
    def experiments(self) -> Path:
        return self.experiments_path or self.data_dir / "experiments"

    @property
    def profiles(self) -> Path:
        return self.profiles_path or self.data_dir / "profiles"

    @property
    def profiles_redis(self) -> str:
        return self.profile_redis_url or self.redis_url

    @property
    def suppression(self) -> Path:
        return self.profile_suppression or self.data_dir / "profiles.suppressed"

    @property
    def profile_id_order(self) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.profile_ids.split(","))

    @property
    def key_file(self) -> Path:
        return self.pseudonym_key_file or self.data_dir / "pseudonym.key"


def load_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] = os.environ, config_file: Path | None = None
) -> Settings:
    """Settings from `flags` (None means not given), `environ` and the TOML file (flag, then
    PERSONABID_CONFIG)."""
    names = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(flags) - set(names)
    if unknown:
        raise ConfigError(f"unknown settings: {sorted(unknown)}")
    config_file = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            from_file = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from exc
        stray = set(from_file) - set(names)
        if stray:
            raise ConfigError(f"config file {config_file}: unknown settings {sorted(stray)}")
        values.update(from_file)
    for name in names:
        key = ENV_PREFIX + name.upper()
        if environ.get(key):
            values[name] = environ[key]
    values.update({k: v for k, v in flags.items() if v is not None})
    return Settings(**{k: _coerce(k, names[k].type, v) for k, v in values.items()})


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("dict"):
            return _rates(name, value)
        if "Path" in kind:
            return Path(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return {"true": True, "1": True, "false": False, "0": False}[str(value).strip().lower()]
        return str(value)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"setting {name}={value!r}: expected {kind}") from exc


def _rates(name: str, value: Any) -> dict[str, float]:
    """A currency table from TOML (a table) or the environment ("EUR=1.08,GBP=1.27"); USD is always 1."""
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(",") if part.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError(f"setting {name}={value!r}: expected CODE=RATE,CODE=RATE")
        value = {code.strip(): rate for code, _, rate in pairs}
    if not isinstance(value, dict):
        raise ConfigError(f"setting {name}={value!r}: expected a table of CODE = RATE")
    try:
        return {"USD": 1.0, **{str(code): float(rate) for code, rate in value.items()}}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}={value!r}: {exc}") from exc
