"""The public wrappers of the Numba kernels refuse arrays of the wrong shape, dtype or layout with a
ValueError that says what they expected, before any compiled code runs."""

from __future__ import annotations

import numpy as np
import pytest

from personabid.arrays import require
from personabid.ctr.features import FeatureSpec
from personabid.ctr.model import CtrModel
from personabid.decision.pricing import price

M = 5


def prices_of(**overrides: object) -> np.ndarray:
    arrays: dict[str, object] = {
        "base_bid": np.full(M, 2.0),
        "max_bid": np.full(M, 5.0),
        "pctr": np.full(M, 0.01, dtype=np.float32),
    }
    arrays.update(overrides)
    return price(arrays["base_bid"], arrays["max_bid"], arrays["pctr"], 0.01, 0.5)  # type: ignore[arg-type]


def test_well_formed_arrays_are_priced() -> None:
    np.testing.assert_allclose(prices_of(), np.full(M, 2.0))


@pytest.mark.parametrize(
    ("name", "bad", "says"),
    [
        ("pctr", np.full(M, 0.01), "pctr: expected a C-contiguous float32 array of shape (5,), got float64"),
        ("max_bid", np.full(M - 1, 5.0), "max_bid: expected a C-contiguous float64 array of shape (5,)"),
        (
            "base_bid",
            np.full((M, 1), 2.0),
            "base_bid: expected a C-contiguous float64 array of shape (rows,)",
        ),
        ("max_bid", np.full(2 * M, 5.0)[::2], "max_bid: expected a C-contiguous float64 array"),
        ("pctr", [0.01] * M, "pctr: expected a C-contiguous float32 array of shape (5,), got list"),
    ],
    ids=["dtype", "length", "ndim", "strided", "not-an-array"],
)
def test_price_refuses_what_its_kernel_cannot_take(name: str, bad: object, says: str) -> None:
    with pytest.raises(ValueError) as refused:
        prices_of(**{name: bad})
    assert str(refused.value).startswith(says)


def test_require_returns_the_array_itself_not_a_copy() -> None:
    array = np.zeros((3, 4), dtype=np.int64)
    assert require("indices", array, np.int64, 2, width=4) is array


def test_require_names_the_expected_width_of_a_table() -> None:
    with pytest.raises(
        ValueError, match=r"indices: expected a C-contiguous int64 array of shape \(rows, 4\)"
    ):
        require("indices", np.zeros((3, 5), dtype=np.int64), np.int64, 2, width=4)


SPEC = FeatureSpec(fields=("campaign", "slot"), crosses=(), bits=8)
MODEL = CtrModel(
    spec=SPEC, weights=np.zeros(SPEC.size + 1, dtype=np.float32), calibration=(1.0, 0.0), avg_ctr=0.01
)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (np.zeros((4, 2), dtype=np.int32), "got int32 of shape (4, 2)"),
        (np.zeros(8, dtype=np.int64), "got int64 of shape (8,)"),
        (np.zeros((4, 4), dtype=np.int64)[:, ::2], "got a strided view"),
    ],
    ids=["dtype", "ndim", "strided"],
)
def test_pctr_refuses_indices_its_kernel_cannot_take(bad: np.ndarray, says: str) -> None:
    with pytest.raises(ValueError, match="indices: expected a C-contiguous int64 array") as refused:
        MODEL.pctr(bad)
    assert says in str(refused.value)


def test_feature_hashing_refuses_a_token_matrix_of_the_wrong_width() -> None:
    expected = r"tokens: expected a C-contiguous uint64 array of shape \(rows, 2\)"
    with pytest.raises(ValueError, match=expected):
        SPEC.indices(np.zeros((3, 5), dtype=np.uint64))
