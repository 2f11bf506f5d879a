"""FTRL-Proximal against a slow NumPy reference written from the paper's pseudo-code."""

from __future__ import annotations

import numpy as np

from personabid.training.ftrl import FtrlParams, FtrlTrainer


def reference_ftrl(indices: np.ndarray, labels: np.ndarray, size: int, p: FtrlParams) -> np.ndarray:
    z = np.zeros(size + 1)
    n = np.zeros(size + 1)

    def weight(k: int, l1: float) -> float:
        if abs(z[k]) <= l1:
            return 0.0
        return -(z[k] - np.sign(z[k]) * l1) / ((p.beta + np.sqrt(n[k])) / p.alpha + p.l2)

    for row, y in zip(indices, labels, strict=True):
        keys = [*row.tolist(), size]
        w = [weight(k, p.l1 if k < size else 0.0) for k in keys]
        prob = 1 / (1 + np.exp(-np.clip(sum(w), -35, 35)))
        g = prob - y
        for k, wk in zip(keys, w, strict=True):
            sigma = (np.sqrt(n[k] + g * g) - np.sqrt(n[k])) / p.alpha
            z[k] += g - sigma * wk
            n[k] += g * g
    return np.array([weight(k, p.l1 if k < size else 0.0) for k in range(size + 1)])


def test_ftrl_weights_equal_the_reference() -> None:
    rng = np.random.default_rng(0)
    size = 64
    indices = rng.integers(0, size, size=(400, 5))
    labels = (rng.random(400) < 0.3).astype(np.float64)
    params = FtrlParams(alpha=0.1, beta=1.0, l1=0.5, l2=0.1)
    trainer = FtrlTrainer(size, params)
    trainer.partial_fit(indices, labels)
    np.testing.assert_allclose(
        trainer.weights(), reference_ftrl(indices, labels, size, params), rtol=1e-5, atol=1e-7
    )


def test_ftrl_l1_keeps_rare_features_at_zero() -> None:
    rng = np.random.default_rng(1)
    indices = np.zeros((500, 2), dtype=np.int64)
    indices[:, 1] = rng.integers(1, 10, size=500)
    indices[0, 1] = 99  # seen once
    trainer = FtrlTrainer(128, FtrlParams(l1=5.0))
    trainer.partial_fit(indices, (rng.random(500) < 0.5).astype(float))
    assert trainer.weights()[99] == 0.0


def test_ftrl_learns_a_planted_signal() -> None:
    rng = np.random.default_rng(2)
    feature = rng.integers(0, 2, size=20_000)
    labels = (rng.random(20_000) < np.where(feature == 1, 0.3, 0.05)).astype(float)
    trainer = FtrlTrainer(8, FtrlParams(alpha=0.1))
    trainer.partial_fit(feature.reshape(-1, 1), labels)
    w = trainer.weights()
    assert w[1] > w[0]
