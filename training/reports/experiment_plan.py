"""Which file of an experiment a report reads: the arms as planned, their traffic shares and the control.

The server reads the experiments in force from settings.experiments (every *.toml directly in it) and,
when one ends or a higher version replaces it, keeps a copy of the old file as
settings.experiments/ended/NAME-vVERSION.toml (server/experiments/registry.py). So the versions of
experiment NAME are the file in force and the archived ones. The log records each line's arm
("NAME:arm"), not the version it was drawn under, so the report cannot match a version to the lines: it
takes the highest version whose arms include every arm the log shows (an earlier version with other arms
cannot be the one that ran), and says in its notes which one it took when there was more than one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from personabid.errors import PersonabidError

ENDED = "ended"  # the archive's directory under settings.experiments


class ExperimentReportError(PersonabidError):
    """An experiment report that cannot be made as asked; names the field and the value."""


@dataclass(frozen=True)
class Plan:
    """The arms as planned: names in order, their traffic shares, the control, and where they came from."""

    arms: tuple[str, ...]
    shares: tuple[float, ...]
    control: str
    source: str  # the experiment file, or "" when the shares are assumed equal
    version: int = 0
    notes: tuple[str, ...] = field(default=(), compare=False)


def read_plan(path: Path) -> Plan:
    """The plan of the experiment file at `path` (checked as the server checks it)."""
    from personabid.experiments.spec import read_experiment

    experiment = read_experiment(path)
    arms = tuple(arm.name for arm in experiment.arms)
    return Plan(
        arms=arms,
        shares=tuple(arm.share for arm in experiment.arms),
        # The file's control key, not an arm that happens to be called "control".
        control=experiment.control or arms[0],
        source=str(path),
        version=experiment.version,
    )


def given(name: str, path: Path) -> Plan:
    """The plan of the file the user named; ExperimentReportError when it is another experiment's."""
    from personabid.experiments.spec import read_experiment

    experiment = read_experiment(path)
    if experiment.name != name:
        raise ExperimentReportError(
            f"experiment-file={str(path)!r}: the file is experiment {experiment.name!r}, not {name!r}"
        )
    return read_plan(path)


def found(name: str, directory: Path) -> list[Plan]:
    """The plans of every version of experiment `name` in `directory` (the experiments in force) and its
    archive (directory/ended), highest version first. Files that are not TOML or name another experiment
    are passed over; a file of this name that fails the server's checks is an error naming it."""
    paths = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    archive = directory / ENDED
    paths += sorted(archive.glob("*.toml")) if archive.is_dir() else []
    plans = [read_plan(path) for path in paths if _name(path) == name]
    return sorted(plans, key=lambda p: (-p.version, p.source))


def choose(name: str, plans: Sequence[Plan], seen: Collection[str]) -> Plan | None:
    """The plan the report reads, out of `plans` (highest version first), given the arms the log shows;
    None when there is no file. Its notes say which version was taken and why."""
    if not plans:
        return None
    fitting = [p for p in plans if set(seen) <= set(p.arms)]
    chosen = (fitting or list(plans))[0]
    if len(plans) == 1:
        return chosen
    versions = sorted({p.version for p in plans})
    why = (
        "the highest whose arms include every arm in the log"
        if fitting
        else "the highest; none has every arm in the log"
    )
    note = (
        f"The log does not record which version of {name!r} its lines were drawn under: of the versions "
        f"{', '.join(map(str, versions))} found, version {chosen.version} ({chosen.source}) gives the "
        f"planned shares and the control, {why}."
    )
    return Plan(chosen.arms, chosen.shares, chosen.control, chosen.source, chosen.version, (note,))


def default_directory() -> Path:
    """settings.experiments (load_settings, honouring PERSONABID_CONFIG)."""
    from personabid.config import load_settings

    return load_settings({}).experiments


def _name(path: Path) -> str | None:
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("name")
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None
