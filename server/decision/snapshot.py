"""What one decision reads: an index version and a model version, loaded, checked and swapped as a whole.

A Snapshot is immutable; a reload builds a new one and replaces the reference, so requests in flight
finish on the version they started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from personabid.ctr.model import CtrModel
from personabid.index.bundle import IndexBundle, load_index


@dataclass(frozen=True)
class Snapshot:
    bundle: IndexBundle
    model: CtrModel

    @classmethod
    def load(cls, index_path: Path, model_path: Path) -> Snapshot:
        return cls(bundle=load_index(index_path), model=CtrModel.load(model_path))

    @property
    def dims(self) -> int:
        return self.bundle.vocab.dims
