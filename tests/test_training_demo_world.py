"""The demo world's model comes from the training pipeline and learns the world's click model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personabid.artifact import resolve
from personabid.ctr.features import DEFAULT_SPEC
from personabid.demo import SimulatedLog, simulate_log, train_demo_model
from personabid.index.bundle import load_index
from personabid.world import World

# About 15,000 clicks: enough for the category, device and slot effects to be learned.
IMPRESSIONS = 1_500_000


@pytest.fixture(scope="module")
def large_log(demo_dir: Path, world: World) -> tuple[SimulatedLog, object]:
    bundle = load_index(demo_dir / "index")
    _, quality = world.campaigns(len(bundle.campaigns))
    return simulate_log(world, bundle, quality, IMPRESSIONS, np.random.default_rng(2026)), bundle.campaigns


def test_learned_auc_is_within_0_01_of_the_ground_truth_auc(large_log: tuple[SimulatedLog, object]) -> None:
    simulated, table = large_log
    _, summary = train_demo_model(simulated, table, DEFAULT_SPEC)  # type: ignore[arg-type]
    evaluation = summary["evaluation"]
    assert summary["split"]["order"] == "time" and evaluation["clicks"] > 1000
    assert evaluation["truth_auc"] - evaluation["auc"] < 0.01, evaluation


def test_simulated_click_rates_are_those_of_display_ads(large_log: tuple[SimulatedLog, object]) -> None:
    simulated, _ = large_log
    assert 0.005 < simulated.truth.mean() < 0.03
    assert 0.005 < np.median(simulated.truth) < 0.03


def test_the_demo_model_carries_the_pipelines_report(demo_dir: Path) -> None:
    manifest = json.loads((resolve(demo_dir / "model") / "manifest.json").read_text())
    report = manifest["training"]
    assert report["split"]["order"] == "time"
    assert report["calibration"]["method"] == "platt"
    assert {"auc", "truth_auc", "log_loss", "predicted_over_actual", "reliability"} <= set(
        report["evaluation"]
    )
