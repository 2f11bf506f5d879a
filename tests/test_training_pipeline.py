"""The training pipeline: time-ordered split, chunked passes, bad-row limit, calibration, artifact."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from personabid.ctr.features import default_spec
from personabid.training.fm import FmParams
from personabid.training.ftrl import FtrlParams
from personabid.training.logs import BadRows, LogError, featurize
from personabid.training.source import LogFile
from personabid.training.train import CALIBRATION, EVALUATION, TRAIN, Split, TrainOptions, train, train_ftrl


def criteo_log(path: Path, rows: int, seed: int = 0, bad_every: int = 0, drift_from: int = 0) -> Path:
    """A Criteo TSV log whose clicks depend on C1 and on I1: a signal a model must find. From row
    `drift_from` on (if given), every click rate is a third of what it was."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(rows):
        c1, i1 = int(rng.integers(0, 20)), int(rng.integers(0, 50))
        p = (0.02 + 0.15 * (c1 < 5) + 0.05 * (i1 > 25)) / (3 if drift_from and i >= drift_from else 1)
        label = "x" if bad_every and i % bad_every == 0 else str(int(rng.random() < p))
        categories = [f"{c1:08x}", *(f"{int(rng.integers(0, 1000)):08x}" for _ in range(25))]
        lines.append("\t".join([label, str(i1), *[str(int(rng.integers(0, 9)))] * 12, *categories]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_held_out_rows_are_the_newest_in_time() -> None:
    times = np.array([5, 1, 9, 3, 7, 2, 8, 6, 4, 0])
    parts = Split(calibration=0.2, evaluation=0.2).parts(10, times)
    assert sorted(times[parts == EVALUATION]) == [8, 9]
    assert sorted(times[parts == CALIBRATION]) == [6, 7]
    assert times[parts == TRAIN].max() < times[parts == CALIBRATION].min()


def test_without_time_the_last_rows_of_the_file_are_held_out() -> None:
    parts = Split(calibration=0.2, evaluation=0.2).parts(10, None)
    assert parts.tolist() == [TRAIN] * 6 + [CALIBRATION] * 2 + [EVALUATION] * 2


def test_rows_with_equal_times_split_in_file_order() -> None:
    parts = Split(calibration=0.25, evaluation=0.25).parts(8, np.array([1, 1, 1, 1, 0, 0, 0, 0]))
    assert parts.tolist() == [CALIBRATION, CALIBRATION, EVALUATION, EVALUATION] + [TRAIN] * 4


def test_trained_model_finds_the_planted_signal_on_held_out_rows(tmp_path: Path) -> None:
    log = LogFile(criteo_log(tmp_path / "day_0", 6000), "criteo")
    _, summary = train(log, default_spec("criteo"), TrainOptions(model="ftrl"))
    assert summary["split"] == {"order": "file", "train": 4800, "calibration": 600, "evaluation": 600}
    assert summary["evaluation"]["auc"] > 0.6


@pytest.mark.parametrize("model", ["ftrl", "fm"])
def test_a_log_larger_than_the_memory_budget_trains_to_the_same_model(tmp_path: Path, model: str) -> None:
    path = criteo_log(tmp_path / "day_0", 3000)
    spec = default_spec("criteo")
    options = TrainOptions(model=model, fm=FmParams(epochs=2))
    kept, _ = train(LogFile(path, "criteo"), spec, options)
    reread, _ = train(LogFile(path, "criteo", chunk_rows=700), spec, replace(options, memory_bytes=1))
    np.testing.assert_array_equal(kept.weights, reread.weights)
    if model == "fm":
        np.testing.assert_array_equal(kept.factors, reread.factors)
    assert kept.calibration == reread.calibration


def test_training_fails_when_bad_rows_pass_the_limit(tmp_path: Path) -> None:
    log = LogFile(criteo_log(tmp_path / "day_0", 1000, bad_every=20), "criteo")
    with pytest.raises(LogError, match=r"50 of 1000 rows are unreadable \(5.00%.*line 1: label 'x'"):
        train(log, default_spec("criteo"), TrainOptions(max_bad_fraction=0.01))


def test_bad_rows_under_the_limit_are_reported_with_their_lines(tmp_path: Path) -> None:
    log = LogFile(criteo_log(tmp_path / "day_0", 1000, bad_every=20), "criteo")
    _, summary = train(log, default_spec("criteo"), TrainOptions(max_bad_fraction=0.1))
    assert summary["data"]["rows"] == 950 and summary["data"]["bad_rows"] == 50
    assert [r["line"] for r in summary["data"]["first_bad_rows"][:3]] == [1, 21, 41]


def test_calibration_on_the_newer_slice_corrects_a_drifted_click_rate(tmp_path: Path) -> None:
    # Clicks fall to a third after the training rows: the raw model bids three times too high.
    log = LogFile(criteo_log(tmp_path / "day_0", 20_000, seed=1, drift_from=16_000), "criteo")
    _, summary = train(log, default_spec("criteo"), TrainOptions(model="ftrl"))
    assert summary["calibration"]["uncalibrated"]["predicted_over_actual"] > 2
    assert summary["evaluation"]["predicted_over_actual"] == pytest.approx(1.0, abs=0.2)


def test_reader_features_are_the_same_in_another_process(tmp_path: Path) -> None:
    path = criteo_log(tmp_path / "day_0", 50)
    spec = default_spec("criteo")
    code = (
        "import sys; from pathlib import Path;"
        "from personabid.ctr.features import default_spec;"
        "from personabid.training.logs import BadRows, featurize;"
        "from personabid.training.source import LogFile;"
        "s = default_spec('criteo');"
        "print([featurize(s, c).tolist() for c in LogFile(Path(sys.argv[1]), 'criteo').chunks(BadRows())])"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "977"},
    ).stdout.strip()
    here = [featurize(spec, c).tolist() for c in LogFile(path, "criteo").chunks(BadRows())]
    assert other == str(here)


def test_a_log_without_clicks_in_its_training_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "day_0"
    path.write_text("".join("0" + "\t1" * 13 + f"\t{i:08x}" * 26 + "\n" for i in range(100)))
    with pytest.raises(LogError, match=r"the training rows \(80\) have 0 clicks"):
        train(LogFile(path, "criteo"), default_spec("criteo"), TrainOptions())


def test_rows_already_hashed_train_through_the_same_pipeline() -> None:
    rng = np.random.default_rng(6)
    indices = rng.integers(0, 64, size=(20_000, 3))
    labels = (rng.random(20_000) < np.where(indices[:, 0] < 8, 0.3, 0.05)).astype(float)
    spec = default_spec("criteo")
    model, summary = train_ftrl(spec, indices, labels, FtrlParams())
    assert summary["split"]["order"] == "file" and summary["evaluation"]["auc"] > 0.65  # the truth: 0.68
    assert model.pctr(indices[:5]).shape == (5,)
