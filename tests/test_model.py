"""The model's scoring kernel, its calibration and its artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personabid.ctr.features import FeatureSpec
from personabid.ctr.model import CtrModel
from personabid.errors import ArtifactError
from personabid.training.calibration import fit_platt

SPEC = FeatureSpec(fields=("campaign", "slot"), crosses=(), bits=8)


def model(rng: np.random.Generator, calibration: tuple[float, float] = (1.0, 0.0)) -> CtrModel:
    weights = rng.normal(0, 0.5, size=SPEC.size + 1).astype(np.float32)
    return CtrModel(spec=SPEC, weights=weights, calibration=calibration, avg_ctr=0.01)


def test_pctr_equals_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    m = model(rng, calibration=(0.8, -0.3))
    indices = rng.integers(0, SPEC.size, size=(100, 2))
    logits = m.weights[indices].sum(axis=1, dtype=np.float64) + m.weights[-1]
    reference = 1 / (1 + np.exp(-(0.8 * logits - 0.3)))
    np.testing.assert_allclose(m.pctr(indices), reference, rtol=1e-5)


def test_pctr_of_no_rows_is_empty() -> None:
    m = model(np.random.default_rng(1))
    assert m.pctr(np.zeros((0, 2), dtype=np.int64)).shape == (0,)


def test_platt_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(-3, 1.5, size=200_000)
    labels = (rng.random(len(logits)) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(float)
    scale, shift = fit_platt(logits, labels)
    assert scale == pytest.approx(0.5, abs=0.05)
    assert shift == pytest.approx(-1.0, abs=0.1)


def test_model_round_trips_through_its_artifact(tmp_path: Path) -> None:
    m = model(np.random.default_rng(3), calibration=(0.9, 0.1))
    m.save(tmp_path)
    loaded = CtrModel.load(tmp_path)
    assert loaded.spec == m.spec and loaded.calibration == m.calibration and loaded.avg_ctr == m.avg_ctr
    np.testing.assert_array_equal(loaded.weights, m.weights)


def test_model_with_weights_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="weights"):
        CtrModel(spec=SPEC, weights=np.zeros(10, dtype=np.float32), calibration=(1, 0), avg_ctr=0.01)


def fm_model(rng: np.random.Generator) -> CtrModel:
    weights = rng.normal(0, 0.5, size=SPEC.size + 1).astype(np.float32)
    factors = rng.normal(0, 0.2, size=(SPEC.size, 3)).astype(np.float32)
    return CtrModel(SPEC, weights, (1.1, -0.2), 0.01, model_type="fm", factors=factors)


def test_factorization_machine_round_trips_through_its_artifact(tmp_path: Path) -> None:
    m = fm_model(np.random.default_rng(4))
    m.save(tmp_path)
    loaded = CtrModel.load(tmp_path)
    assert loaded.model_type == "fm" and loaded.factors is not None
    np.testing.assert_array_equal(loaded.factors, m.factors)
    indices = np.random.default_rng(5).integers(0, SPEC.size, size=(20, SPEC.width))
    np.testing.assert_array_equal(loaded.pctr(indices), m.pctr(indices))


def test_factorization_machine_without_factors_is_refused() -> None:
    with pytest.raises(ArtifactError, match="factors"):
        CtrModel(SPEC, np.zeros(SPEC.size + 1, np.float32), (1, 0), 0.01, model_type="fm")
