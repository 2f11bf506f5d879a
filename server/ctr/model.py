"""The CTR model artifact and its scoring kernels.

A model is a feature specification, one weight per hashed feature plus a bias, for a factorization
machine also one factor vector per hashed feature, and a Platt calibration fitted on held-out rows: the
bidder multiplies by pCTR, so a model that is twice too high would bid twice too much. `avg_ctr` is the
mean click rate of the training log, the CTR at which a campaign bids its base bid. Training fits the
calibration (personabid.training.calibration) and writes a version with `CtrModel.save`.

Files of a version: manifest.json, weights.npy, and factors.npy for a factorization machine (format 2;
linear models stay format 1, which servers before factorization machines can read).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from personabid.arrays import require
from personabid.artifact import FileWriter, read_manifest, resolve, write_artifact
from personabid.ctr.features import FeatureSpec
from personabid.ctr.logistic import sigmoid
from personabid.errors import ArtifactError

KIND = "ctr-model"
FORMAT_VERSION = 1
FM_FORMAT_VERSION = 2
WEIGHTS = "weights.npy"
FACTORS = "factors.npy"
MODEL_TYPES = ("ftrl", "fm")


@nb.njit(cache=True)
def _pctr(indices: np.ndarray, weights: np.ndarray, scale: float, shift: float) -> np.ndarray:
    rows, width = indices.shape
    bias = weights[weights.shape[0] - 1]
    out = np.empty(rows, dtype=np.float32)
    for r in range(rows):
        logit = bias
        for j in range(width):
            logit += weights[indices[r, j]]
        out[r] = sigmoid(scale * logit + shift)
    return out


@nb.njit(cache=True)
def _logits(indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    rows, width = indices.shape
    out = np.empty(rows, dtype=np.float64)
    bias = weights[weights.shape[0] - 1]
    for r in range(rows):
        logit = bias
        for j in range(width):
            logit += weights[indices[r, j]]
        out[r] = logit
    return out


@nb.njit(cache=True, inline="always")
def _fm_logit(indices: np.ndarray, r: int, weights: np.ndarray, factors: np.ndarray) -> float:
    # The pairwise term sum_{i<j} <v_i, v_j> in O(width * k): ((sum v)^2 - sum v^2) / 2 per factor.
    width = indices.shape[1]
    logit = np.float64(weights[weights.shape[0] - 1])
    for j in range(width):
        logit += weights[indices[r, j]]
    for f in range(factors.shape[1]):
        total = 0.0
        squares = 0.0
        for j in range(width):
            v = np.float64(factors[indices[r, j], f])
            total += v
            squares += v * v
        logit += 0.5 * (total * total - squares)
    return logit


@nb.njit(cache=True)
def _fm_pctr(
    indices: np.ndarray, weights: np.ndarray, factors: np.ndarray, scale: float, shift: float
) -> np.ndarray:
    out = np.empty(indices.shape[0], dtype=np.float32)
    for r in range(indices.shape[0]):
        out[r] = sigmoid(scale * _fm_logit(indices, r, weights, factors) + shift)
    return out


@nb.njit(cache=True)
def _fm_logits(indices: np.ndarray, weights: np.ndarray, factors: np.ndarray) -> np.ndarray:
    out = np.empty(indices.shape[0], dtype=np.float64)
    for r in range(indices.shape[0]):
        out[r] = _fm_logit(indices, r, weights, factors)
    return out


@dataclass(frozen=True)
class CtrModel:
    spec: FeatureSpec
    weights: np.ndarray  # float32 (spec.size + 1,), bias last
    calibration: tuple[float, float]  # Platt: pctr = sigmoid(scale * logit + shift)
    avg_ctr: float
    version: str = ""
    model_type: str = "ftrl"
    factors: np.ndarray | None = None  # float32 (spec.size, k) for a factorization machine, else None

    def __post_init__(self) -> None:
        if self.weights.shape != (self.spec.size + 1,) or self.weights.dtype != np.float32:
            raise ArtifactError(
                f"model weights have shape {self.weights.shape} and dtype {self.weights.dtype}, "
                f"expected ({self.spec.size + 1},) float32"
            )
        if not 0.0 < self.avg_ctr < 1.0:
            raise ArtifactError(f"model avg_ctr={self.avg_ctr} is not in (0, 1)")
        if self.model_type not in MODEL_TYPES:
            raise ArtifactError(f"model_type={self.model_type!r} is not one of {MODEL_TYPES}")
        if (self.model_type == "fm") != (self.factors is not None):
            raise ArtifactError(
                f"a {self.model_type} model {'needs' if self.model_type == 'fm' else 'has no'} factors"
            )
        if self.factors is not None and (
            self.factors.ndim != 2
            or self.factors.shape[0] != self.spec.size
            or self.factors.shape[1] < 1
            or self.factors.dtype != np.float32
        ):
            raise ArtifactError(
                f"model factors have shape {self.factors.shape} and dtype {self.factors.dtype}, "
                f"expected ({self.spec.size}, k) float32"
            )

    def pctr(self, indices: np.ndarray) -> np.ndarray:
        """float32 (rows,) calibrated click probabilities for int64 (rows, width) feature indices.

        The indices must lie in [0, spec.size): FeatureSpec.indices makes them so, and the kernel does not
        check again (a bounds check would cost the hot path more than the rest of the call)."""
        require("indices", indices, np.int64, 2)
        scale, shift = self.calibration
        if self.factors is not None:
            return _fm_pctr(indices, self.weights, self.factors, scale, shift)
        return _pctr(indices, self.weights, scale, shift)

    def logits(self, indices: np.ndarray) -> np.ndarray:
        """float64 (rows,) raw logits, before calibration, for int64 (rows, width) feature indices."""
        require("indices", indices, np.int64, 2)
        if self.factors is not None:
            return _fm_logits(indices, self.weights, self.factors)
        return _logits(indices, self.weights)

    def save(
        self, root: Path, fields: dict[str, Any] | None = None, files: dict[str, FileWriter] | None = None
    ) -> Path:
        """Write a new version under `root`; `files` adds files (a report) beside the weights."""
        arrays = (
            {WEIGHTS: self.weights}
            if self.factors is None
            else {WEIGHTS: self.weights, FACTORS: self.factors}
        )
        writers: dict[str, FileWriter] = {
            name: functools.partial(_save_array, array=array) for name, array in arrays.items()
        }
        return write_artifact(
            root,
            KIND,
            FORMAT_VERSION if self.factors is None else FM_FORMAT_VERSION,
            {**writers, **(files or {})},
            {
                "model_type": self.model_type,
                "feature_spec": self.spec.to_json(),
                "calibration": {"scale": self.calibration[0], "shift": self.calibration[1]},
                "avg_ctr": self.avg_ctr,
                **(fields or {}),
            },
        )

    @classmethod
    def load(cls, path: Path, servable: bool = True) -> CtrModel:
        """The model at `path` (a root or a version), checksums verified.

        With `servable` (the server's case), a model whose features the decision path cannot compute
        (one trained on a public log format) is refused here rather than failing every request.
        """
        directory = resolve(path)
        manifest = read_manifest(directory, KIND, (FORMAT_VERSION, FM_FORMAT_VERSION))
        try:
            spec = FeatureSpec.from_json(manifest["feature_spec"])
            model_type = manifest.get("model_type", "ftrl")
            calibration = (float(manifest["calibration"]["scale"]), float(manifest["calibration"]["shift"]))
            model = cls(
                spec=spec,
                weights=np.load(directory / WEIGHTS, allow_pickle=False),
                calibration=calibration,
                avg_ctr=float(manifest["avg_ctr"]),
                version=manifest["version"],
                model_type=model_type,
                factors=np.load(directory / FACTORS, allow_pickle=False) if model_type == "fm" else None,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{directory}: unreadable model: {exc}") from exc
        if servable and not spec.servable:
            raise ArtifactError(
                f"{directory}: the model was trained on {spec.schema} log features, which the bidder "
                "cannot compute; serve a model trained on the service's event log (--format events)"
            )
        return model


def _save_array(path: Path, array: np.ndarray) -> None:
    np.save(path, array, allow_pickle=False)
