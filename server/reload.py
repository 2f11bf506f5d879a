"""Live reloads: a new index, model or profile version is loaded, verified, warmed and swapped in whole.

The server holds one Decider reference; a reload builds a new Decider beside it and replaces the
reference, so a request in flight finishes on the version it started with. A version that fails any
check (checksums, dimensions, counts, a warm-up decision) is refused, logged and counted; the version in
force keeps serving, and the refused version is not tried again until it changes or is asked for by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from personabid.artifact import CURRENT, MANIFEST, resolve
from personabid.ctr.model import CtrModel
from personabid.decision.pipeline import Decider, DecisionSettings
from personabid.decision.snapshot import Snapshot
from personabid.errors import ArtifactError
from personabid.index.bundle import load_index
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
    """Run decisions that reach every stage: compiles the kernels and proves the snapshot decides."""
    bundle = decider.snapshot.bundle
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
    ) -> None:
        self.settings = settings
        self.spend = spend
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
            return decider

    def _prepare(self, index_path: Path, model_path: Path) -> Decider:
        return self._ready(Snapshot.load(index_path, model_path), self.profiles)

    def _ready(self, snapshot: Snapshot, profiles: Profiles | None) -> Decider:
        # Warm up without spend control or profiles: warm-up bids must not reserve any campaign's budget.
        warm_up(Decider(snapshot, self.settings))
        source = self.profile_source
        store = source.store(snapshot.bundle.vocab, profiles) if source is not None else None
        return Decider(snapshot, self.settings, spend=self.spend, profiles=store)

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
                decider = await asyncio.to_thread(self._prepare_swap, kind, directory, current)
            except (ArtifactError, OSError, ValueError, RuntimeError) as exc:
                self._refuse(kind, version or _current_name(state.path), exc)
                raise ReloadRefused(f"{kind} {version or 'CURRENT'} refused: {exc}") from exc
            previous = state.version
            self._swap(decider, now=time.time(), kinds=(kind,))
            state.succeeded += 1
            state.last_error = ""
            self._on_outcome(kind, True)
            seconds = time.perf_counter() - started
            log.info("%s %s swapped in (was %s), loaded in %.2fs", kind, state.version, previous, seconds)
            return ReloadResult(True, state.version, previous, seconds)

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _current_name(root: Path) -> str:
    try:
        return (root / CURRENT).read_text().strip()
    except OSError:
        return ""
