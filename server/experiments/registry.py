"""The experiments in force: read from the experiments directory, swapped live, and the routing of each
request to the Decider of its arms.

Like the index and the model (reload.py), the set in force is replaced whole: a change builds the
Deciders of every variant its arms make beside the ones serving, then swaps one reference, so a request
in flight finishes in the arms it started in. The watch compares each *.toml file's contents with what is
in force: a new file starts an experiment, a removed one ends it, a changed one must raise its version.
A file that fails a check is refused, logged once and counted; what is in force keeps serving, and the
file is not tried again until it changes.

Several experiments may be in force at once, as long as no two change the same knob (model, index,
strategy, bid_multiplier): a request is in one arm of each, and the variant that decides it takes each
knob from the one experiment that holds it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from personabid.decision.pipeline import Decider, Decision
from personabid.errors import PersonabidError
from personabid.experiments.assign import arm_index, assignment_key, labels
from personabid.experiments.spec import Arm, Experiment, ExperimentError, parse_experiment
from personabid.openrtb.request import BidRequest

log = logging.getLogger(__name__)
# The Deciders one set of experiments may need; each is cheap, but each pinned version is memory.
MAX_VARIANTS = 64
PUT_SOURCE = "PutExperiment"
# Where an ended or replaced version's file is kept, as NAME-vVERSION.toml: a report over the log of a
# finished experiment still needs its planned shares and its control. The watch reads only the *.toml
# files directly in the directory, so nothing in here is put in force again.
ENDED = "ended"
UNREADABLE = "unreadable"  # the refusal of a directory that cannot be listed


@dataclass(frozen=True)
class Variant:
    """What a request's arms change, merged: the serving defaults where no arm names a knob."""

    model: str = ""  # a model version directory; "" is the root's CURRENT
    index: str = ""  # an index version directory; "" is the root's CURRENT
    strategy: str = "linear"
    strategy_params: tuple[tuple[str, float], ...] = ()
    bid_multiplier: float = 1.0

    @classmethod
    def of(cls, arms: Sequence[Arm]) -> Variant:
        """The variant of one arm of each experiment in force (no two of which share a knob)."""
        variant = cls()
        for arm in arms:
            if arm.model is not None:
                variant = _with(variant, model=arm.model)
            if arm.index is not None:
                variant = _with(variant, index=arm.index)
            if arm.strategy is not None:
                variant = _with(variant, strategy=arm.strategy, strategy_params=arm.strategy_params)
            if arm.bid_multiplier is not None:
                variant = _with(variant, bid_multiplier=arm.bid_multiplier)
        return variant


def _with(variant: Variant, **changes: object) -> Variant:
    return Variant(**{**variant.__dict__, **changes})


def combinations(experiments: Sequence[Experiment]) -> dict[tuple[int, ...], Variant]:
    """Every combination of one arm per experiment (arm indices, in the experiments' order), and the
    variant it decides in."""
    return {
        picks: Variant.of([e.arms[i] for e, i in zip(experiments, picks, strict=True)])
        for picks in itertools.product(*(range(len(e.arms)) for e in experiments))
    }


def check_conflicts(experiments: Sequence[Experiment]) -> None:
    """ExperimentError when two experiments change the same knob, naming both (the later is refused)."""
    holders: dict[str, Experiment] = {}
    for experiment in experiments:
        for knob in experiment.knobs:
            other = holders.get(knob)
            if other is not None:
                raise ExperimentError(
                    experiment.source,
                    "arms",
                    knob,
                    f"experiment {experiment.name!r} changes {knob}, which experiment {other.name!r} "
                    f"({other.source}) already changes",
                )
            holders[knob] = experiment
    variants = set(combinations(experiments).values())
    if len(variants) > MAX_VARIANTS:
        last = experiments[-1]
        raise ExperimentError(
            last.source,
            "arms",
            len(variants),
            f"the experiments in force would need {len(variants)} variants, more than {MAX_VARIANTS}",
        )


class Traffic:
    """Requests and bids per experiment and arm in this process, counted from every decision thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], list[int]] = {}

    def count(self, arms: tuple[tuple[str, str], ...], bids: int) -> None:
        with self._lock:
            for key in arms:
                counts = self._counts.get(key)
                if counts is None:
                    counts = self._counts[key] = [0, 0]
                counts[0] += 1
                counts[1] += bids

    def of(self, experiment: str, arm: str) -> tuple[int, int]:
        """(requests, bids) so far."""
        with self._lock:
            requests, bids = self._counts.get((experiment, arm), (0, 0))
        return requests, bids

    def reset(self, experiment: str) -> None:
        with self._lock:
            for key in [k for k in self._counts if k[0] == experiment]:
                del self._counts[key]


class Routing:
    """The experiments in force (sorted by name) and the Decider of each combination of their arms."""

    def __init__(
        self,
        experiments: tuple[Experiment, ...],
        deciders: Mapping[tuple[int, ...], Decider],
        traffic: Traffic,
    ) -> None:
        self.experiments = experiments
        self.traffic = traffic
        self._deciders = dict(deciders)
        self._labels = {
            picks: tuple(f"{e.name}:{e.arms[i].name}" for e, i in zip(experiments, picks, strict=True))
            for picks in self._deciders
        }
        self._keys = {
            picks: tuple((e.name, e.arms[i].name) for e, i in zip(experiments, picks, strict=True))
            for picks in self._deciders
        }

    @property
    def deciders(self) -> Mapping[tuple[int, ...], Decider]:
        return self._deciders

    def decide(self, request: BidRequest) -> Decision:
        """Decide `request` in the variant of its arms, recording them on the Decision."""
        message = assignment_key(request)
        picks = tuple(arm_index(e, message) for e in self.experiments)
        decision = self._deciders[picks].decide_in(request, self._labels[picks])
        self.traffic.count(self._keys[picks], len(decision.bids))
        return decision


class Builds(Protocol):
    """What puts a set of experiments in force: the Reloader, which owns the Deciders."""

    traffic: Traffic

    @property
    def experiments(self) -> tuple[Experiment, ...]: ...

    async def apply_experiments(
        self, experiments: tuple[Experiment, ...], before_swap: Callable[[], None] | None = None
    ) -> None: ...


@dataclass
class Loaded:
    experiment: Experiment
    path: Path
    digest: str  # sha256 of the file's bytes, to see a change
    loaded_unix: float
    text: str = ""  # the file as it was put in force, kept when it ends (ENDED)


@dataclass
class Outcomes:
    succeeded: int = 0
    failed: int = 0
    last_error: str = ""
    refused: dict[Path, str] = field(default_factory=dict)  # file -> digest of the refused contents


class Experiments:
    """The experiments directory and the set in force: loads, changes and ends, from the watch or Admin."""

    def __init__(
        self,
        directory: Path,
        builder: Builds,
        on_outcome: Callable[[bool], None] = lambda ok: None,
    ) -> None:
        self.directory = directory
        self._builder = builder
        self._on_outcome = on_outcome
        self._in_force: dict[str, Loaded] = {}
        self.outcomes = Outcomes()
        self._lock = asyncio.Lock()

    @property
    def traffic(self) -> Traffic:
        return self._builder.traffic

    def in_force(self) -> list[Loaded]:
        return [self._in_force[name] for name in sorted(self._in_force)]

    def arms_for_user(self, pseudonym: str) -> tuple[str, ...]:
        """The user's arm in each experiment in force, "experiment:arm" sorted by experiment; () for no
        pseudonym (a conversion from nobody known)."""
        if not pseudonym:
            return ()
        return labels(self._builder.experiments, pseudonym)

    async def refresh(self) -> None:
        """Bring the set in force in line with the directory's files, one file's change at a time (the
        Reloader's watch calls it on every round)."""
        async with self._lock:
            try:
                files = await asyncio.to_thread(_read_directory, self.directory)
            except OSError as exc:
                # Unreadable as a whole (permissions, a vanished mount): change nothing, look again later,
                # and say so once.
                if self.outcomes.refused.get(self.directory) != UNREADABLE:
                    self._refuse(self.directory, UNREADABLE, exc)
                return
            # A refused file that is gone is forgotten: written again, it is read again.
            for path in [p for p in self.outcomes.refused if p not in files]:
                del self.outcomes.refused[path]
            for loaded in list(self._in_force.values()):
                if loaded.path not in files:
                    try:
                        await self._end(loaded)
                    except (PersonabidError, OSError, ValueError, RuntimeError) as exc:
                        self._refuse(loaded.path, "", exc)
            for path, (digest, data) in files.items():
                held = self._held_at(path)
                if (held is not None and held.digest == digest) or self.outcomes.refused.get(path) == digest:
                    continue
                try:
                    text = data.decode("utf-8")
                    experiment = parse_experiment(text, str(path))
                    await self._apply(experiment, path, digest, text=text)
                except (PersonabidError, OSError, ValueError, RuntimeError) as exc:
                    self._refuse(path, digest, exc)

    async def put(self, text: str) -> Loaded:
        """Check `text`, put it in force and write it (atomically) into the directory: as <name>.toml, or
        over the file the experiment already came from. ExperimentError when it is refused."""
        async with self._lock:
            try:
                experiment = parse_experiment(text, PUT_SOURCE)
                held = self._in_force.get(experiment.name)
                path = held.path if held is not None else self.directory / f"{experiment.name}.toml"
                other = self._held_at(path)
                if other is not None and other.experiment.name != experiment.name:
                    raise ExperimentError(
                        PUT_SOURCE,
                        "name",
                        experiment.name,
                        f"{path} holds experiment {other.experiment.name!r}",
                    )
                digest = _digest(text.encode("utf-8"))
                if held is not None and held.digest == digest:
                    return held
                experiment = replace(experiment, source=str(path))
                return await self._apply(
                    experiment, path, digest, write=lambda: _write_atomically(path, text), text=text
                )
            except (PersonabidError, OSError, ValueError, RuntimeError) as exc:
                self._count(False, f"{PUT_SOURCE}: {exc}")
                log.error("experiment refused, the set in force keeps serving: %s", exc)
                raise

    async def end(self, name: str) -> Loaded:
        """End the experiment `name` and remove its file; KeyError when none is in force by that name."""
        async with self._lock:
            loaded = self._in_force.get(name)
            if loaded is None:
                raise KeyError(name)
            await self._end(loaded)
            return loaded

    def _held_at(self, path: Path) -> Loaded | None:
        return next((loaded for loaded in self._in_force.values() if loaded.path == path), None)

    async def _apply(
        self,
        experiment: Experiment,
        path: Path,
        digest: str,
        write: Callable[[], None] | None = None,
        text: str = "",
    ) -> Loaded:
        held = self._in_force.get(experiment.name)
        if held is not None and held.path != path:
            raise ExperimentError(
                experiment.source, "name", experiment.name, f"already in force from {held.path}"
            )
        if held is not None and experiment.version <= held.experiment.version:
            raise ExperimentError(
                experiment.source,
                "version",
                experiment.version,
                f"a changed experiment must raise its version above {held.experiment.version}",
            )
        replaced = self._held_at(path)  # the file may now hold another experiment's name
        others = [
            loaded.experiment
            for name, loaded in self._in_force.items()
            if name != experiment.name and loaded is not replaced
        ]
        proposed = tuple(sorted([*others, experiment], key=lambda e: e.name))
        # Conflicts are reported against the newcomer: those in force were accepted first.
        check_conflicts([*sorted(others, key=lambda e: e.name), experiment])
        await self._builder.apply_experiments(proposed, before_swap=write)
        if replaced is not None and replaced.experiment.name != experiment.name:
            del self._in_force[replaced.experiment.name]
            self.traffic.reset(replaced.experiment.name)
            await self._archive(replaced)
        if held is not None:
            await self._archive(held)
        loaded = Loaded(experiment, path, digest, time.time(), text)
        self._in_force[experiment.name] = loaded
        self.outcomes.refused.pop(path, None)
        if held is not None:
            self.traffic.reset(experiment.name)  # the traffic of this version, not the one before
        self._count(True)
        log.info(
            "experiment %s version %d in force (%s), arms %s",
            experiment.name,
            experiment.version,
            path,
            ", ".join(f"{a.name} {a.share:g}" for a in experiment.arms),
        )
        return loaded

    async def _end(self, loaded: Loaded) -> None:
        name = loaded.experiment.name
        proposed = tuple(self._in_force[n].experiment for n in sorted(self._in_force) if n != name)

        def remove() -> None:
            loaded.path.unlink(missing_ok=True)

        await self._builder.apply_experiments(proposed, before_swap=remove)
        del self._in_force[name]
        self.traffic.reset(name)
        await self._archive(loaded)
        self._count(True)
        log.info("experiment %s version %d ended", name, loaded.experiment.version)

    async def _archive(self, loaded: Loaded) -> None:
        """Keep the file of a version that is no longer in force as ENDED/NAME-vVERSION.toml (atomically).
        A failure is logged and the change stands: serving must not depend on the archive."""
        experiment = loaded.experiment
        path = self.directory / ENDED / f"{experiment.name}-v{experiment.version}.toml"
        try:
            await asyncio.to_thread(_write_atomically, path, loaded.text)
        except OSError as exc:
            log.warning(
                "experiment %s version %d: not archived at %s: %s",
                experiment.name,
                experiment.version,
                path,
                exc,
            )

    def _refuse(self, path: Path, digest: str, error: Exception) -> None:
        self.outcomes.refused[path] = digest
        held = self._held_at(path)
        keeps = f"version {held.experiment.version} keeps serving" if held is not None else "not in force"
        self._count(False, f"{path}: {error}")
        log.error("experiment file %s refused (%s): %s", path, keeps, error)

    def _count(self, ok: bool, error: str = "") -> None:
        if ok:
            self.outcomes.succeeded += 1
        else:
            self.outcomes.failed += 1
            self.outcomes.last_error = error
        self._on_outcome(ok)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_directory(directory: Path) -> dict[Path, tuple[str, bytes]]:
    """Every *.toml file of `directory` (none if it does not exist): its digest and bytes."""
    if not directory.is_dir():
        return {}
    files: dict[Path, tuple[str, bytes]] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed between the listing and the read: the next look sees it gone
        files[path] = (_digest(data), data)
    return files


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` beside `path` and rename it into place: a watcher never reads half a file. The
    temporary name does not end in .toml, so no watcher takes it for an experiment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
