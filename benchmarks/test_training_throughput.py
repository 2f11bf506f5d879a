"""Training throughput: one epoch of FTRL and of the factorization machine over iPinYou-like rows.

Run: .venv/bin/python -m pytest benchmarks/test_training_throughput.py --benchmark-only
     --benchmark-json=benchmarks/results/training.json

Rows have 16 active hashed features in a 2^20 space, one per iPinYou field, each field's values drawn
with iPinYou's cardinality (5 weekdays ... 131,235 IP prefixes) and a skewed (Zipf) frequency, as in a
real log. The kernels are single-threaded: rows per second per core is 200,000 / the median time. Each
benchmark checks that one epoch learns a planted signal before it is timed; none asserts a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from personabid.ctr.features import default_spec
from personabid.training.evaluate import auc
from personabid.training.fm import FmParams, FmTrainer
from personabid.training.ftrl import FtrlParams, FtrlTrainer

ROWS = 200_000
# Distinct values per field in the iPinYou 2997 featindex, in field order.
CARDINALITY = (5, 25, 14, 131_235, 35, 367, 2, 800, 961, 2, 2, 4, 2, 4, 2, 5)


@pytest.fixture(scope="module")
def ipinyou_like() -> tuple[np.ndarray, np.ndarray]:
    """int64 (ROWS, 16) hashed features and float64 (ROWS,) clicks that depend on two fields."""
    rng = np.random.default_rng(2997)
    spec = default_spec("ipinyou")
    values = np.stack([(rng.zipf(1.4, ROWS) - 1) % n for n in CARDINALITY], axis=1).astype(np.uint64)
    tokens = values * np.uint64(0x9E3779B97F4A7C15)  # distinct values, distinct tokens
    indices = spec.indices(np.ascontiguousarray(tokens))
    logit = -4.6 + 1.5 * (values[:, 7] % 7 == 0) + 1.0 * (values[:, 1] < 5)
    labels = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return indices, labels


def _checked(
    trainer: FtrlTrainer | FmTrainer,
    indices: np.ndarray,
    labels: np.ndarray,
    logits: Callable[[], np.ndarray],
) -> None:
    loss = trainer.partial_fit(indices, labels)
    assert np.isfinite(loss) and loss < 0.2
    assert auc(labels, logits()) > 0.6, "one epoch should learn the planted signal"


def _rows_per_second(benchmark: BenchmarkFixture) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["rows_per_second"] = ROWS / stats.stats.median


def test_ftrl_epoch_16_features(
    benchmark: BenchmarkFixture, ipinyou_like: tuple[np.ndarray, np.ndarray]
) -> None:
    indices, labels = ipinyou_like
    trainer = FtrlTrainer(1 << 20, FtrlParams(), offset=-4.0)
    _checked(trainer, indices, labels, lambda: trainer.weights()[indices].sum(axis=1))
    benchmark.extra_info["rows"] = ROWS
    benchmark(trainer.partial_fit, indices, labels)
    _rows_per_second(benchmark)


def test_fm_epoch_16_features_8_factors(
    benchmark: BenchmarkFixture, ipinyou_like: tuple[np.ndarray, np.ndarray]
) -> None:
    indices, labels = ipinyou_like
    trainer = FmTrainer(1 << 20, FmParams(factors=8), offset=-4.0)
    _checked(trainer, indices, labels, lambda: trainer.weights()[indices].sum(axis=1))
    benchmark.extra_info["rows"] = ROWS
    benchmark(trainer.partial_fit, indices, labels)
    _rows_per_second(benchmark)
