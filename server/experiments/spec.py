"""An experiment's file: a versioned TOML document, read and checked once.

    name = "bid-multiplier"        # [a-z0-9][a-z0-9_-]{0,62}
    version = 3                    # an integer >= 1; a changed file must raise it
    salt = "2f6b0c1e-bid-mult"     # at least 8 characters: the key of the assignment's hash
    description = "..."            # optional
    control = "control"            # optional; default: the first arm
    [[arms]]
    name = "control"
    share = 0.5
    [[arms]]
    name = "double"
    share = 0.5
    bid_multiplier = 2.0           # optional, in (0, 1000]
    model = "VERSION"              # optional: a version directory under the model root
    index = "VERSION"              # optional: a version directory under the index root
    strategy = "ortb"              # optional: linear, constant or ortb (decision/pricing.py)
    [arms.strategy_params]         # the strategy's parameters (ortb: c, lambda)
    c = 5.0
    lambda = 0.002

What an arm names is a knob the experiment holds: model, index, strategy (with its parameters) or
bid_multiplier. An arm that leaves a knob unnamed serves what the server serves without experiments.
Every error names the file, the field and the value.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personabid.decision.pricing import STRATEGIES, check_strategy
from personabid.errors import ConfigError

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# A version directory's name: what the artifact writer makes, and nothing that leaves the root.
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MIN_SALT = 8
MAX_ARMS = 16
SHARE_TOLERANCE = 1e-9
KNOBS = ("model", "index", "strategy", "bid_multiplier")
TOP_FIELDS = frozenset({"name", "version", "salt", "description", "control", "arms"})
ARM_FIELDS = frozenset({"name", "share", "bid_multiplier", "model", "index", "strategy", "strategy_params"})


class ExperimentError(ConfigError):
    """An experiment file that cannot be put in force; names its file, field and value."""

    def __init__(self, source: str, field_name: str, value: object, reason: str) -> None:
        self.source = source
        self.field = field_name
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{source}: {field_name}={shown}: {reason}")


@dataclass(frozen=True)
class Arm:
    name: str
    share: float
    # None: the arm leaves the knob as the server has it.
    bid_multiplier: float | None = None
    model: str | None = None
    index: str | None = None
    strategy: str | None = None
    strategy_params: tuple[tuple[str, float], ...] = ()

    @property
    def knobs(self) -> tuple[str, ...]:
        """The knobs this arm names, in KNOBS order."""
        named = {
            "model": self.model is not None,
            "index": self.index is not None,
            "strategy": self.strategy is not None,
            "bid_multiplier": self.bid_multiplier is not None,
        }
        return tuple(k for k in KNOBS if named[k])


@dataclass(frozen=True)
class Experiment:
    name: str
    version: int
    salt: str = field(repr=False)  # the assignment's key: never shown (Admin lists a hash of it)
    arms: tuple[Arm, ...] = ()
    control: str = ""
    description: str = ""
    source: str = ""  # the file it was read from (or the name it was given under)
    # Cumulative shares, one per arm, for the assignment (assign.py).
    bounds: tuple[float, ...] = field(default=(), compare=False)

    @property
    def knobs(self) -> tuple[str, ...]:
        """The knobs any of its arms names: what no other experiment in force may change."""
        named = {k for arm in self.arms for k in arm.knobs}
        return tuple(k for k in KNOBS if k in named)

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)


def parse_experiment(text: str, source: str) -> Experiment:
    """The experiment `text` describes; ExperimentError naming `source`, the field and the value."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(source, "toml", _excerpt(text), f"not TOML: {exc}") from None
    return _experiment(data, source)


def read_experiment(path: Path) -> Experiment:
    """The experiment in the file at `path` (OSError when it cannot be read)."""
    return parse_experiment(path.read_text(encoding="utf-8"), str(path))


def _experiment(data: Mapping[str, Any], source: str) -> Experiment:
    def fail(name: str, value: object, reason: str) -> ExperimentError:
        return ExperimentError(source, name, value, reason)

    for key in data:
        if key not in TOP_FIELDS:
            raise fail(
                key, data[key], f"not a field of an experiment (fields: {', '.join(sorted(TOP_FIELDS))})"
            )
    name = data.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail("name", name, "expected a name matching [a-z0-9][a-z0-9_-]{0,62}")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise fail("version", version, "expected an integer >= 1")
    salt = data.get("salt")
    if not isinstance(salt, str) or len(salt) < MIN_SALT:
        raise fail(
            "salt",
            "<hidden>" if isinstance(salt, str) else salt,
            f"expected a string of >= {MIN_SALT} characters",
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", description, "expected a string")
    raw_arms = data.get("arms")
    if not isinstance(raw_arms, list) or not 2 <= len(raw_arms) <= MAX_ARMS:
        raise fail("arms", raw_arms, f"expected 2 to {MAX_ARMS} [[arms]] tables")
    arms = tuple(_arm(raw, f"arms[{i}]", fail) for i, raw in enumerate(raw_arms))
    names = [a.name for a in arms]
    for i, arm_name in enumerate(names):
        if arm_name in names[:i]:
            raise fail(f"arms[{i}].name", arm_name, "another arm has this name")
    total = math.fsum(a.share for a in arms)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise fail("arms.share", [a.share for a in arms], f"the shares sum to {total!r}, not 1")
    control = data.get("control", arms[0].name)
    if not isinstance(control, str) or control not in names:
        raise fail("control", control, f"expected one of the arms' names {names}")
    bounds: list[float] = []
    running = 0.0
    for arm in arms:
        running += arm.share
        bounds.append(running)
    return Experiment(
        name=name,
        version=version,
        salt=salt,
        arms=arms,
        control=control,
        description=description,
        source=source,
        bounds=tuple(bounds),
    )


def _arm(raw: object, where: str, fail: Any) -> Arm:
    if not isinstance(raw, dict):
        raise fail(where, raw, "expected a table")
    for key in raw:
        if key not in ARM_FIELDS:
            raise fail(
                f"{where}.{key}", raw[key], f"not a field of an arm (fields: {', '.join(sorted(ARM_FIELDS))})"
            )
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"{where}.name", name, "expected a name matching [a-z0-9][a-z0-9_-]{0,62}")
    share = raw.get("share")
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
        raise fail(f"{where}.share", share, "expected a number in [0, 1]")
    multiplier = raw.get("bid_multiplier")
    if multiplier is not None:
        try:
            check_strategy("linear", {}, multiplier)
        except ValueError as exc:
            raise fail(f"{where}.bid_multiplier", multiplier, _reason(exc)) from None
        multiplier = float(multiplier)
    versions: dict[str, str | None] = {}
    for kind in ("model", "index"):
        value = raw.get(kind)
        if value is not None and (not isinstance(value, str) or not VERSION_NAME.fullmatch(value)):
            raise fail(
                f"{where}.{kind}", value, f"expected the name of a version directory under the {kind} root"
            )
        versions[kind] = value
    strategy = raw.get("strategy")
    params = raw.get("strategy_params")
    if strategy is None and params is not None:
        raise fail(f"{where}.strategy_params", params, "given without a strategy")
    pairs: tuple[tuple[str, float], ...] = ()
    if strategy is not None:
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise fail(f"{where}.strategy", strategy, f"expected one of {sorted(STRATEGIES)}")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise fail(f"{where}.strategy_params", params, "expected a table")
        try:
            check_strategy(strategy, params)
        except ValueError as exc:
            field_name, value = _offender(exc, params)
            raise fail(f"{where}.{field_name}", value, _reason(exc)) from None
        pairs = tuple(sorted((k, float(v)) for k, v in params.items()))
    return Arm(
        name=name,
        share=float(share),
        bid_multiplier=multiplier,
        model=versions["model"],
        index=versions["index"],
        strategy=strategy,
        strategy_params=pairs,
    )


def _reason(error: ValueError) -> str:
    """The reason of a pricing check's message, after its "field=value: " head."""
    return str(error).split(": ", 1)[-1]


def _offender(error: ValueError, params: Mapping[str, object]) -> tuple[str, object]:
    head = str(error).split(":", 1)[0].split("=", 1)[0]
    if head.startswith("strategy_params."):
        return head, params.get(head.removeprefix("strategy_params."))
    return "strategy_params", dict(params)


def _excerpt(text: str) -> str:
    return text[:60]
