"""The tag vocabulary: the axes of user and persona vectors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from personabid.errors import ArtifactError


@dataclass(frozen=True)
class Vocabulary:
    """Tag names in vector order, `family:value` (for example `interest:travel`)."""

    tags: tuple[str, ...]
    _position: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        position = {tag: i for i, tag in enumerate(self.tags)}
        if len(position) != len(self.tags):
            raise ArtifactError("vocabulary has duplicate tags")
        object.__setattr__(self, "_position", position)

    @property
    def dims(self) -> int:
        return len(self.tags)

    def position(self, tag: str) -> int:
        """Index of `tag` in the vector, or -1 if the vocabulary does not have it."""
        return self._position.get(tag, -1)

    def families(self) -> dict[str, list[int]]:
        grouped: dict[str, list[int]] = {}
        for i, tag in enumerate(self.tags):
            grouped.setdefault(tag.split(":", 1)[0], []).append(i)
        return grouped

    def dense(self, weights: dict[str, float]) -> np.ndarray:
        """A float32 vector with the given tag weights; unknown tags raise KeyError."""
        vector = np.zeros(self.dims, dtype=np.float32)
        for tag, weight in weights.items():
            vector[self._position[tag]] = weight
        return vector

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"tags": list(self.tags)}, indent=0) + "\n")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            return cls(tuple(json.loads(path.read_text())["tags"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{path}: unreadable vocabulary: {exc}") from exc
