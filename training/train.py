"""Train a CTR model on hashed feature rows: FTRL on the head of the log, Platt calibration on the next
slice, evaluation on the tail (rows are in time order, so the tail is the future)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from personabid.training.evaluate import report
from personabid.training.features import FeatureSpec
from personabid.training.ftrl import FtrlParams, FtrlTrainer
from personabid.training.model import CtrModel, fit_platt


@dataclass(frozen=True)
class Split:
    calibration: float = 0.1
    evaluation: float = 0.1


def train_ftrl(
    spec: FeatureSpec, indices: np.ndarray, labels: np.ndarray, params: FtrlParams, split: Split = Split()
) -> tuple[CtrModel, dict[str, Any]]:
    """Fit, calibrate and evaluate; `indices` is int64 (rows, spec.width) in time order."""
    rows = len(labels)
    train_end = int(rows * (1 - split.calibration - split.evaluation))
    calib_end = int(rows * (1 - split.evaluation))
    if train_end <= 0 or calib_end <= train_end or rows <= calib_end:
        raise ValueError(f"{rows} rows are too few to split into train, calibration and evaluation")
    base_rate = float(np.clip(np.mean(labels[:train_end]), 1e-6, 1 - 1e-6))
    trainer = FtrlTrainer(spec.size, params, offset=float(np.log(base_rate / (1 - base_rate))))
    losses = [trainer.partial_fit(indices[:train_end], labels[:train_end]) for _ in range(params.epochs)]
    weights = trainer.weights()
    train_ctr = float(np.mean(labels[:train_end]))
    raw = CtrModel(spec=spec, weights=weights, calibration=(1.0, 0.0), avg_ctr=train_ctr)
    calibration = fit_platt(raw.logits(indices[train_end:calib_end]), labels[train_end:calib_end])
    model = CtrModel(spec=spec, weights=weights, calibration=calibration, avg_ctr=train_ctr)
    evaluation = report(labels[calib_end:], model.pctr(indices[calib_end:]))
    summary = {
        "rows": {"train": train_end, "calibration": calib_end - train_end, "evaluation": rows - calib_end},
        "params": params.__dict__,
        "train_log_loss_by_epoch": losses,
        "nonzero_weights": int(np.count_nonzero(weights)),
        "evaluation": evaluation,
    }
    return model, summary
