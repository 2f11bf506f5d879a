"""Live reloads: a new index, model or profile version is loaded, verified, warmed and swapped in whole.

The server holds one Decider reference; a reload builds a new Decider beside it and replaces the
reference, so a request in flight finishes on the version it started with. A version that fails any
check (checksums, dimensions, counts, a warm-up decision) is refused, logged and counted; the version in
force keeps serving, and the refused version is not tried again until it changes or is asked for by name.

While experiments are in force (experiments/), the server also holds their Routing: a Decider per variant
their arms make, swapped whole like the Decider. A variant that names a model or index version reads it
from that version's directory under the root, kept while an experiment names it; a variant that names
none follows the root's CURRENT, so a reload of the CURRENT version rebuilds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from personabid import heap
from personabid.artifact import CURRENT, MANIFEST, resolve
from personabid.ctr.model import CtrModel
from personabid.decision.filter_rows import filter_rows
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.errors import ArtifactError
from personabid.experiments.registry import Routing, Traffic, Variant, combinations
from personabid.experiments.spec import Experiment, ExperimentError
from personabid.index.bundle import IndexBundle, load_index
from personabid.openrtb.request import Banner, BidRequest, Imp, User, Video
from personabid.profiles.artifact import Profiles
from personabid.profiles.source import ProfileSource
from personabid.spend.control import SpendControl

log = logging.getLogger(__name__)
Kind = Literal["index", "model", "profiles"]


class ReloadRefused(ArtifactError):
    """A version failed a check and was not swapped in."""


@dataclass
class ArtifactState:
    path: Path
    version: str = ""
    loaded_unix: float = 0.0
    succeeded: int = 0
    failed: int = 0
    last_error: str = ""
    refused: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ReloadResult:
    swapped: bool
    version: str
    previous_version: str
    load_seconds: float


def warm_up(decider: Decider) -> None:
    """Run decisions that reach every stage: compiles the kernels and proves the snapshot decides. The
    table's filter rows are built here too, so that the first auction does not wait for them."""
    bundle = decider.snapshot.bundle
    filter_rows(bundle.campaigns)
    persona = np.asarray(bundle.index.reconstruct(0), dtype=np.float32) if bundle.index.ntotal else None
    if persona is None or persona.shape != (bundle.vocab.dims,):
        persona = np.ones(bundle.vocab.dims, dtype=np.float32)
    user = User(tag_vector=persona)
    for imp in (
        Imp(id="1", banner=Banner()),
        Imp(id="1", banner=Banner(w=300, h=250)),
        Imp(id="1", video=Video(mimes=("video/mp4",))),
    ):
        decider.decide(BidRequest(id="warm-up", imp=(imp,), user=user))


def _version_dir(root: Path, version: str | None) -> Path:
    if not version:
        return resolve(root)
    if "/" in version or version.startswith(".") or not (root / version / MANIFEST).is_file():
        raise ReloadRefused(f"version {version!r} is not an artifact version under {root}")
    return root / version


class Reloader:
    """Owns the serving Decider: the first load, reloads on demand, and the watch of the artifact roots."""

    def __init__(
        self,
        index_path: Path,
        model_path: Path,
        settings: DecisionSettings,
        on_swap: Callable[[Decider], None],
        on_outcome: Callable[[Kind, bool], None],
        spend: SpendControl | None = None,
        profiles: ProfileSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.spend = spend
        self.clock = clock  # the server's (personabid.clock): every Decider it builds decides on it
        self.decider: Decider | None = None
        self.states: dict[Kind, ArtifactState] = {
            "index": ArtifactState(index_path),
            "model": ArtifactState(model_path),
        }
        self.profile_source = profiles
        # The profile version in force (embedded store only): kept to remap it when the index changes.
        self.profiles: Profiles | None = None
        if profiles is not None and profiles.watched:
            self.states["profiles"] = ArtifactState(profiles.root)
        self._on_swap = on_swap
        self._on_outcome = on_outcome
        self._lock = asyncio.Lock()
        # The experiments in force and their variants' Deciders (None until the first load), the
        # versions their arms pin, and the traffic each arm has had.
        self.routing: Routing | None = None
        self._pinned: dict[tuple[str, str], IndexBundle | CtrModel] = {}
        self.traffic = Traffic()
        # Checked on every round of the watch, after the artifact roots (the experiments directory).
        self.also_watch: list[Callable[[], Awaitable[None]]] = []

    @property
    def experiments(self) -> tuple[Experiment, ...]:
        return self.routing.experiments if self.routing is not None else ()

    def serving(self) -> Decider | Routing | None:
        """What decides a request now: the routing while an experiment is in force, else the Decider."""
        routing = self.routing
        if routing is not None and routing.experiments:
            return routing
        return self.decider

    async def apply_experiments(
        self, experiments: tuple[Experiment, ...], before_swap: Callable[[], None] | None = None
    ) -> None:
        """Build the Deciders of every variant of `experiments` (sorted by name) beside those serving,
        call `before_swap` (which may still refuse by raising), then swap them in whole."""
        async with self._lock:
            base = self.decider
            if base is None:
                raise ReloadRefused("the server has not finished its first load")
            routing, pinned = await asyncio.to_thread(self._route, base, experiments)
            if before_swap is not None:
                before_swap()
            self.routing, self._pinned = routing, pinned

    async def load(self) -> Decider:
        """The first load: the index and the model, and the profiles where there are any, verified and
        warmed."""
        async with self._lock:
            source = self.profile_source
            if source is not None and source.watched:
                if source.present():
                    self.profiles = await asyncio.to_thread(source.load)
                else:
                    log.info("no profiles in %s: users are matched on what requests carry", source.root)
            decider = await asyncio.to_thread(
                self._prepare, self.states["index"].path, self.states["model"].path
            )
            kinds: tuple[Kind, ...] = ("index", "model", "profiles") if self.profiles else ("index", "model")
            self._swap(decider, now=time.time(), kinds=kinds)
            self.routing, self._pinned = await asyncio.to_thread(self._route, decider, self.experiments)
            return decider

    def _prepare(self, index_path: Path, model_path: Path) -> Decider:
        return self._ready(Snapshot.load(index_path, model_path), self.profiles)

    def _ready(self, snapshot: Snapshot, profiles: Profiles | None) -> Decider:
        # Warm up without spend control or profiles: warm-up bids must not reserve any campaign's budget.
        warm_up(Decider(snapshot, self.settings, clock=self.clock))
        source = self.profile_source
        store = source.store(snapshot.bundle.vocab, profiles) if source is not None else None
        return Decider(snapshot, self.settings, clock=self.clock, spend=self.spend, profiles=store)

    def _swap(self, decider: Decider, now: float, kinds: tuple[Kind, ...]) -> None:
        self.decider = decider
        versions = {
            "index": decider.snapshot.bundle.version,
            "model": decider.snapshot.model.version,
            "profiles": self.profiles.version if self.profiles is not None else "",
        }
        for kind in kinds:
            self.states[kind].version = versions[kind]
            self.states[kind].loaded_unix = now
        self._on_swap(decider)
        heap.settle(collect=False)

    async def reload(self, kind: Kind, version: str | None = None) -> ReloadResult:
        """Load `version` (default: the root's CURRENT) of the index or the model and swap it in."""
        async with self._lock:
            state = self.states[kind]
            current = self.decider
            if current is None:
                raise ReloadRefused("the server has not finished its first load")
            started = time.perf_counter()
            try:
                directory = _version_dir(state.path, version)
                if directory.name == state.version:
                    return ReloadResult(False, state.version, state.version, 0.0)
                decider, routing, pinned = await asyncio.to_thread(
                    self._prepare_routed, kind, directory, current
                )
            except (ArtifactError, ExperimentError, OSError, ValueError, RuntimeError) as exc:
                # ExperimentError: a version an experiment's arm names could not be loaded beside it.
                self._refuse(kind, version or _current_name(state.path), exc)
                raise ReloadRefused(f"{kind} {version or 'CURRENT'} refused: {exc}") from exc
            previous = state.version
            self._swap(decider, now=time.time(), kinds=(kind,))
            self.routing, self._pinned = routing, pinned
            state.succeeded += 1
            state.last_error = ""
            self._on_outcome(kind, True)
            seconds = time.perf_counter() - started
            log.info("%s %s swapped in (was %s), loaded in %.2fs", kind, state.version, previous, seconds)
            return ReloadResult(True, state.version, previous, seconds)

    def _prepare_routed(
        self, kind: Kind, directory: Path, current: Decider
    ) -> tuple[Decider, Routing, dict[tuple[str, str], IndexBundle | CtrModel]]:
        decider = self._prepare_swap(kind, directory, current)
        return (decider, *self._route(decider, self.experiments))

    def _route(
        self, base: Decider, experiments: tuple[Experiment, ...]
    ) -> tuple[Routing, dict[tuple[str, str], IndexBundle | CtrModel]]:
        """The Routing of `experiments` around `base` (the Decider of the versions in force), and the
        pinned versions it holds. A pinned version already loaded is reused, not read again."""
        pinned: dict[tuple[str, str], IndexBundle | CtrModel] = {}
        snapshot = base.snapshot
        in_force: dict[tuple[str, str], IndexBundle | CtrModel] = {
            ("index", snapshot.bundle.version): snapshot.bundle,
            ("model", snapshot.model.version): snapshot.model,
        }
        for experiment in experiments:
            for i, arm in enumerate(experiment.arms):
                for kind, version in (("index", arm.index), ("model", arm.model)):
                    key = (kind, version or "")
                    if version is None or key in pinned:
                        continue
                    try:
                        # The version in force now, if named, is pinned too: once CURRENT moves on, the
                        # arm keeps the version it named.
                        held = in_force[key] if key in in_force else self._pinned.get(key)
                        pinned[key] = held if held is not None else self._load_pinned(kind, version)
                    except (ArtifactError, OSError, ValueError) as exc:
                        raise ExperimentError(
                            experiment.source, f"arms[{i}].{kind}", version, str(exc)
                        ) from None
        artifacts = {**in_force, **pinned}  # by (kind, version); names are unique per kind
        by_variant: dict[Variant, Decider] = {Variant(): base}
        deciders: dict[tuple[int, ...], Decider] = {}
        for picks, variant in combinations(experiments).items():
            decider = by_variant.get(variant)
            if decider is None:
                decider = by_variant[variant] = self._variant(base, variant, artifacts)
            deciders[picks] = decider
        return Routing(experiments, deciders, self.traffic), pinned

    def _load_pinned(self, kind: str, version: str) -> IndexBundle | CtrModel:
        state = self.states["index" if kind == "index" else "model"]
        directory = _version_dir(state.path, version)
        if kind == "model":
            return CtrModel.load(directory)
        bundle = load_index(directory)
        serving = self.decider.snapshot.dims if self.decider is not None else bundle.vocab.dims
        if bundle.vocab.dims != serving:
            raise ReloadRefused(f"dims {bundle.vocab.dims} differ from the serving {serving}")
        return bundle

    def _variant(
        self, base: Decider, variant: Variant, artifacts: dict[tuple[str, str], IndexBundle | CtrModel]
    ) -> Decider:
        snapshot = base.snapshot
        if variant.index:
            bundle = artifacts[("index", variant.index)]
            assert isinstance(bundle, IndexBundle)
            snapshot = replace(snapshot, bundle=bundle)
        if variant.model:
            model = artifacts[("model", variant.model)]
            assert isinstance(model, CtrModel)
            snapshot = replace(snapshot, model=model)
        settings = replace(
            base.settings,
            strategy=variant.strategy,
            strategy_params=variant.strategy_params,
            bid_multiplier=variant.bid_multiplier,
        )
        # Warmed like any new version, without spend control: warm-up bids reserve no budget.
        warm_up(Decider(snapshot, settings, clock=base.clock))
        if snapshot.bundle is base.snapshot.bundle:
            store = base.profiles
        else:
            source = self.profile_source
            store = source.store(snapshot.bundle.vocab, self.profiles) if source is not None else None
        return Decider(snapshot, settings, clock=base.clock, spend=base.spend, profiles=store)

    def _prepare_swap(self, kind: Kind, directory: Path, current: Decider) -> Decider:
        snapshot = current.snapshot
        if kind == "profiles":
            assert self.profile_source is not None  # a profiles state exists only with a source
            profiles = self.profile_source.load(directory)
            decider = self._ready(snapshot, profiles)
            self.profiles = profiles  # swapped in by the caller, under the lock
            return decider
        if kind == "index":
            bundle = load_index(directory)
            if bundle.vocab.dims != snapshot.dims:
                # Exchanges size their dense vectors to the vocabulary; a new one needs a coordinated restart.
                raise ReloadRefused(f"dims {bundle.vocab.dims} differ from the serving {snapshot.dims}")
            candidate = replace(snapshot, bundle=bundle)
        else:
            candidate = replace(snapshot, model=CtrModel.load(directory))
        return self._ready(candidate, self.profiles)

    def _refuse(self, kind: Kind, version: str, exc: Exception) -> None:
        state = self.states[kind]
        state.failed += 1
        state.last_error = f"{version}: {exc}"
        state.refused.add(version)
        self._on_outcome(kind, False)
        log.error("%s version %s refused, %s keeps serving: %s", kind, version, state.version, exc)

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Reload whenever a root's CURRENT names a new version, until `stop` is set."""
        while not stop.is_set():
            if self.profile_source is not None:
                # Someone asked to be forgotten: from the next lookup on, in every worker.
                await asyncio.to_thread(self.profile_source.suppression.refresh)
            for kind, state in self.states.items():
                name = _current_name(state.path)
                if name and name != state.version and name not in state.refused:
                    # A refusal is logged and counted; the version in force keeps serving.
                    with contextlib.suppress(ReloadRefused):
                        await self.reload(kind)
            for refresh in self.also_watch:
                await refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _current_name(root: Path) -> str:
    try:
        return (root / CURRENT).read_text().strip()
    except OSError:
        return ""
