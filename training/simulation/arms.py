"""The arm a simulated request falls in, computed as the server computes it (the same experiment file,
read and assigned by the server's own code, personabid.experiments), so that what the simulator drew can
be told apart by arm without asking the server.

A request is assigned by its user's pseudonym, or by "auction:" + its request id without a user id. The
pseudonym is the server's keyed hash of the raw id: the simulator reads the same key (the data
directory's pseudonym.key, or PERSONABID_PSEUDONYM_KEY) and never writes an id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from personabid.experiments.assign import AUCTION_PREFIX, labels
from personabid.experiments.spec import Experiment, read_experiment
from personabid.privacy import KEY_ENV, Pseudonymizer

__all__ = ["AUCTION_PREFIX", "Split", "read_pseudonymizer", "read_split"]


@dataclass(frozen=True)
class Split:
    """An experiment as far as assignment goes."""

    experiment: Experiment

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(arm.name for arm in self.experiment.arms)

    @property
    def bounds(self) -> tuple[float, ...]:
        return self.experiment.bounds  # cumulative shares

    @property
    def control(self) -> str:
        return self.experiment.control

    def label(self, message: str) -> str:
        """ "experiment:arm" for `message` (a pseudonym, or "auction:" + a request id)."""
        return labels((self.experiment,), message)[0]


def read_split(path: Path) -> tuple[Split, str]:
    """The experiment of a TOML file and its text, checked as the server checks it when it is put
    (personabid.experiments.spec: a bad file is refused here, naming the field, before any traffic)."""
    return Split(read_experiment(path)), path.read_text()


def read_pseudonymizer(key_file: Path) -> Pseudonymizer | None:
    """The server's pseudonymisation, if its key can be read here; None otherwise (a key is never made
    up: one that is not the server's would put users in the wrong arms)."""
    if os.environ.get(KEY_ENV):
        return Pseudonymizer(os.environ[KEY_ENV].encode())
    if key_file.is_file():
        return Pseudonymizer(key_file.read_text().strip().encode())
    return None
