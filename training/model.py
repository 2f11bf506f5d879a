"""The CTR model artifact and its scoring kernel.

A model is a feature specification, one weight per hashed feature plus a bias, and a Platt calibration
fitted on held-out rows: the bidder multiplies by pCTR, so a model that is twice too high would bid twice
too much. `avg_ctr` is the mean click rate of the training log, the CTR at which a campaign bids its
base bid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from personabid.artifact import read_manifest, resolve, write_artifact
from personabid.errors import ArtifactError
from personabid.training.features import FeatureSpec

KIND = "ctr-model"
FORMAT_VERSION = 1
WEIGHTS = "weights.npy"


@nb.njit(cache=True)
def _pctr(indices: np.ndarray, weights: np.ndarray, scale: float, shift: float) -> np.ndarray:
    rows, width = indices.shape
    bias = weights[weights.shape[0] - 1]
    out = np.empty(rows, dtype=np.float32)
    for r in range(rows):
        logit = bias
        for j in range(width):
            logit += weights[indices[r, j]]
        z = scale * logit + shift
        z = min(max(z, -35.0), 35.0)
        out[r] = 1.0 / (1.0 + np.exp(-z))
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


@dataclass(frozen=True)
class CtrModel:
    spec: FeatureSpec
    weights: np.ndarray  # float32 (spec.size + 1,), bias last
    calibration: tuple[float, float]  # Platt: pctr = sigmoid(scale * logit + shift)
    avg_ctr: float
    version: str = ""
    model_type: str = "ftrl"

    def __post_init__(self) -> None:
        if self.weights.shape != (self.spec.size + 1,) or self.weights.dtype != np.float32:
            raise ArtifactError(
                f"model weights have shape {self.weights.shape} and dtype {self.weights.dtype}, "
                f"expected ({self.spec.size + 1},) float32"
            )
        if not 0.0 < self.avg_ctr < 1.0:
            raise ArtifactError(f"model avg_ctr={self.avg_ctr} is not in (0, 1)")

    def pctr(self, indices: np.ndarray) -> np.ndarray:
        """float32 (rows,) calibrated click probabilities for int64 (rows, spec.width) feature indices."""
        scale, shift = self.calibration
        return _pctr(indices, self.weights, scale, shift)

    def logits(self, indices: np.ndarray) -> np.ndarray:
        """float64 (rows,) raw logits, before calibration."""
        return _logits(indices, self.weights)

    def save(self, root: Path, fields: dict[str, Any] | None = None) -> Path:
        return write_artifact(
            root,
            KIND,
            FORMAT_VERSION,
            {WEIGHTS: lambda path: np.save(path, self.weights, allow_pickle=False)},
            {
                "model_type": self.model_type,
                "feature_spec": self.spec.to_json(),
                "calibration": {"scale": self.calibration[0], "shift": self.calibration[1]},
                "avg_ctr": self.avg_ctr,
                **(fields or {}),
            },
        )

    @classmethod
    def load(cls, path: Path) -> CtrModel:
        directory = resolve(path)
        manifest = read_manifest(directory, KIND, (FORMAT_VERSION,))
        try:
            weights = np.load(directory / WEIGHTS, allow_pickle=False)
            spec = FeatureSpec.from_json(manifest["feature_spec"])
            calibration = (float(manifest["calibration"]["scale"]), float(manifest["calibration"]["shift"]))
            return cls(
                spec=spec,
                weights=weights,
                calibration=calibration,
                avg_ctr=float(manifest["avg_ctr"]),
                version=manifest["version"],
                model_type=manifest.get("model_type", "ftrl"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{directory}: unreadable model: {exc}") from exc


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Fit sigmoid(scale * logit + shift) to labels by Newton's method on the log loss (Platt scaling).

    Uses Platt's smoothed targets so that a held-out slice with few clicks cannot drive the fit to
    infinity.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    positives = y.sum()
    negatives = len(y) - positives
    target = np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    scale, shift = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(scale * x + shift, -35, 35)))
        gradient = np.array([np.dot(p - target, x), np.sum(p - target)])
        weight = p * (1 - p) + 1e-12
        hessian = np.array(
            [[np.dot(weight, x * x), np.dot(weight, x)], [np.dot(weight, x), np.sum(weight)]]
        ) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        scale, shift = scale - step[0], shift - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(scale), float(shift)
