"""Train a CTR model on a log: learn on the oldest rows, calibrate on the next slice, judge on the newest.

Rows are split by time where the log has it (by file order otherwise, logs being written in time order):
nothing the model is judged on is older than anything it learned from, as when yesterday's model meets
today's traffic. A log is read a chunk at a time, once to learn its size, labels and times, then once per
epoch and once to score the held-out rows; its hashed features stay in memory between passes only when
they fit in `memory_bytes`, so a log larger than memory trains at the price of re-reading it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from personabid.ctr.features import FeatureSpec
from personabid.ctr.logistic import sigmoid_array
from personabid.ctr.model import CtrModel
from personabid.progress import progress
from personabid.training.calibration import fit_platt
from personabid.training.evaluate import report
from personabid.training.fm import FmParams, FmTrainer
from personabid.training.ftrl import FtrlParams, FtrlTrainer
from personabid.training.logs import DEFAULT_MAX_BAD_FRACTION, BadRows, LogError, featurize
from personabid.training.source import RowSource

log = logging.getLogger(__name__)
TRAIN, CALIBRATION, EVALUATION = 0, 1, 2


@dataclass(frozen=True)
class Split:
    calibration: float = 0.1
    evaluation: float = 0.1

    def __post_init__(self) -> None:
        if min(self.calibration, self.evaluation) <= 0 or self.calibration + self.evaluation >= 1:
            raise ValueError(
                f"split: calibration={self.calibration} and evaluation={self.evaluation} must be positive "
                "and leave rows to train on"
            )

    def parts(self, rows: int, times: np.ndarray | None) -> np.ndarray:
        """int8 (rows,) TRAIN, CALIBRATION or EVALUATION of each row; int64 `times` order the rows
        (ties in file order), file order without them."""
        train_end = int(rows * (1 - self.calibration - self.evaluation))
        calib_end = int(rows * (1 - self.evaluation))
        if train_end <= 0 or calib_end <= train_end or rows <= calib_end:
            raise LogError(f"{rows} rows are too few to split into train, calibration and evaluation")
        order = np.arange(rows) if times is None else np.argsort(times, kind="stable")
        parts = np.empty(rows, dtype=np.int8)
        parts[order[:train_end]] = TRAIN
        parts[order[train_end:calib_end]] = CALIBRATION
        parts[order[calib_end:]] = EVALUATION
        return parts


@dataclass(frozen=True)
class TrainOptions:
    model: str = "ftrl"  # "ftrl" or "fm"
    ftrl: FtrlParams = field(default_factory=FtrlParams)
    fm: FmParams = field(default_factory=FmParams)
    split: Split = field(default_factory=Split)
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
    memory_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if self.model not in ("ftrl", "fm"):
            raise ValueError(f"model={self.model!r}: ftrl or fm")
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}: at least 1")

    @property
    def epochs(self) -> int:
        return self.ftrl.epochs if self.model == "ftrl" else self.fm.epochs

    @property
    def params(self) -> FtrlParams | FmParams:
        return self.ftrl if self.model == "ftrl" else self.fm


class FeatureRows:
    """The featurized rows of a source, pass after pass: (int64 (n, width) indices, float64 (n,) labels)
    per chunk, kept in memory after the first pass when they fit, else read again."""

    def __init__(self, source: RowSource, spec: FeatureSpec, memory_bytes: int) -> None:
        if source.schema != spec.schema:
            raise LogError(f"the feature spec is over {spec.schema} fields, the log supplies {source.schema}")
        self.source, self.spec, self.memory_bytes = source, spec, memory_bytes
        self.kept: list[tuple[np.ndarray, np.ndarray]] | None = []
        self.bad = BadRows()

    def first_pass(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Read every row once: float64 (rows,) labels and int64 (rows,) times (None without)."""
        labels, times, kept_bytes = [], [], 0
        with progress(log, "reading", unit="rows") as bar:
            for chunk in self.source.chunks(self.bad):
                indices = featurize(self.spec, chunk)
                labels.append(chunk.labels)
                times.append(chunk.time)
                kept_bytes += indices.nbytes + chunk.labels.nbytes
                if self.kept is not None and kept_bytes <= self.memory_bytes:
                    self.kept.append((indices, chunk.labels))
                else:
                    self.kept = None
                bar.update(len(chunk))
        all_labels = np.concatenate(labels) if labels else np.empty(0)
        has_time = bool(times) and all(t is not None for t in times)
        return all_labels, np.concatenate(times) if has_time else None  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    def passes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.kept is not None:
            yield from self.kept
            return
        for chunk in self.source.chunks(BadRows()):
            yield featurize(self.spec, chunk), chunk.labels


def train(source: RowSource, spec: FeatureSpec, options: TrainOptions) -> tuple[CtrModel, dict[str, Any]]:
    """Fit, calibrate and evaluate a model of `spec` on a log; the model and its report."""
    return fit(FeatureRows(source, spec, options.memory_bytes), spec, options)


def fit(
    rows: FeatureRows | HashedRows, spec: FeatureSpec, options: TrainOptions
) -> tuple[CtrModel, dict[str, Any]]:
    """Fit, calibrate and evaluate a model of `spec` on featurized rows; the model and its report."""
    started = time.perf_counter()
    labels, times = rows.first_pass()
    readable = len(labels)
    rows.bad.check(rows.describe().get("path", "rows"), readable, options.max_bad_fraction)
    parts = options.split.parts(readable, times)
    train_labels = labels[parts == TRAIN]
    for part, name in ((TRAIN, "training"), (CALIBRATION, "calibration")):
        clicks, rows_in_part = int(labels[parts == part].sum()), int(np.count_nonzero(parts == part))
        if clicks in (0, rows_in_part):
            raise LogError(
                f"the {name} rows ({rows_in_part}) have {clicks} clicks: a click model needs clicks and "
                "non-clicks in each part (a longer log, or other split fractions)"
            )
    base_rate = float(train_labels.mean())
    offset = float(np.log(base_rate / (1 - base_rate)))
    trainer: FtrlTrainer | FmTrainer = (
        FtrlTrainer(spec.size, options.ftrl, offset)
        if options.model == "ftrl"
        else FmTrainer(spec.size, options.fm, offset)
    )
    # Compile (or load the compiled kernel) before the clock runs: throughput is the kernel's.
    trainer.partial_fit(np.empty((0, spec.width), dtype=np.int64), np.empty(0))
    losses, kernel_seconds = [], 0.0
    for epoch in range(1, options.epochs + 1):
        loss, seconds = _epoch(trainer, rows, parts, epoch, options.epochs, len(train_labels))
        losses.append(loss)
        kernel_seconds += seconds

    raw = _model(trainer, spec, (1.0, 0.0), float(train_labels.mean()), options.model)
    logits = _held_out_logits(raw, rows, parts)
    calibration = fit_platt(logits[CALIBRATION], labels[parts == CALIBRATION])
    model = _model(trainer, spec, calibration, raw.avg_ctr, options.model)
    held_out = labels[parts == EVALUATION]
    summary = {
        "data": {**rows.describe(), "rows": readable, **rows.bad.summary(readable)},
        "split": _split_summary(parts, times),
        "model": {"type": options.model, "params": asdict(options.params)},
        "training": {
            "train_log_loss_by_epoch": losses,
            "rows_per_second": len(train_labels) * options.epochs / max(kernel_seconds, 1e-9),
            "seconds": round(time.perf_counter() - started, 3),
            "nonzero_weights": int(np.count_nonzero(model.weights)),
        },
        "calibration": {
            "method": "platt",
            "scale": calibration[0],
            "shift": calibration[1],
            "uncalibrated": _ctr(held_out, sigmoid_array(logits[EVALUATION])),
        },
        "evaluation": report(held_out, sigmoid_array(calibration[0] * logits[EVALUATION] + calibration[1])),
    }
    return model, summary


def _epoch(
    trainer: FtrlTrainer | FmTrainer,
    rows: FeatureRows | HashedRows,
    parts: np.ndarray,
    epoch: int,
    epochs: int,
    total: int,
) -> tuple[float, float]:
    """One pass over the training rows: mean log loss and seconds spent in the kernel."""
    offset, loss_sum, seconds = 0, 0.0, 0.0
    with progress(log, f"training epoch {epoch}/{epochs}", total=total, unit="rows") as bar:
        for indices, labels in rows.passes():
            train = parts[offset : offset + len(labels)] == TRAIN
            offset += len(labels)
            n = int(train.sum())
            if n == 0:
                continue
            x, y = (indices, labels) if n == len(labels) else (indices[train], labels[train])
            tick = time.perf_counter()
            loss_sum += trainer.partial_fit(x, y) * n
            seconds += time.perf_counter() - tick
            bar.update(n)
    return loss_sum / max(total, 1), seconds


def _held_out_logits(
    model: CtrModel, rows: FeatureRows | HashedRows, parts: np.ndarray
) -> dict[int, np.ndarray]:
    """float64 raw logits of the calibration and evaluation rows, in row order."""
    found: dict[int, list[np.ndarray]] = {CALIBRATION: [], EVALUATION: []}
    offset = 0
    for indices, labels in rows.passes():
        chunk_parts = parts[offset : offset + len(labels)]
        offset += len(labels)
        for part, out in found.items():
            mask = chunk_parts == part
            if mask.any():
                out.append(model.logits(indices[mask]))
    return {part: np.concatenate(out) for part, out in found.items()}


def _model(
    trainer: FtrlTrainer | FmTrainer,
    spec: FeatureSpec,
    calibration: tuple[float, float],
    avg_ctr: float,
    model_type: str,
) -> CtrModel:
    factors = trainer.factors() if isinstance(trainer, FmTrainer) else None
    return CtrModel(spec, trainer.weights(), calibration, avg_ctr, model_type=model_type, factors=factors)


def _split_summary(parts: np.ndarray, times: np.ndarray | None) -> dict[str, Any]:
    names = {TRAIN: "train", CALIBRATION: "calibration", EVALUATION: "evaluation"}
    out: dict[str, Any] = {"order": "file" if times is None else "time"}
    for part, name in names.items():
        out[name] = int(np.count_nonzero(parts == part))
    if times is not None:
        out["time_key_range"] = {
            name: [int(times[parts == part].min()), int(times[parts == part].max())]
            for part, name in names.items()
        }
    return out


def _ctr(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    actual, predicted = float(labels.mean()), float(probabilities.mean())
    ratio = predicted / actual if actual > 0 else float("nan")
    return {"actual_ctr": actual, "predicted_ctr": predicted, "predicted_over_actual": ratio}


class HashedRows:
    """Rows already hashed, in memory: int64 (rows, width) indices and float64 (rows,) labels, in time
    order."""

    def __init__(self, indices: np.ndarray, labels: np.ndarray) -> None:
        self.indices = np.ascontiguousarray(indices, dtype=np.int64)
        self.labels = np.ascontiguousarray(labels, dtype=np.float64)
        if self.indices.ndim != 2 or self.labels.shape != (len(self.indices),):
            raise ValueError(f"indices {self.indices.shape} and labels {self.labels.shape} do not match")
        self.bad = BadRows()

    def first_pass(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.labels, None

    def passes(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield self.indices, self.labels

    def describe(self) -> dict[str, Any]:
        return {"data": "hashed rows in memory"}


def train_ftrl(
    spec: FeatureSpec, indices: np.ndarray, labels: np.ndarray, params: FtrlParams, split: Split = Split()
) -> tuple[CtrModel, dict[str, Any]]:
    """Fit, calibrate and evaluate FTRL on rows already hashed (int64 (rows, spec.width), in time order)."""
    return fit(HashedRows(indices, labels), spec, TrainOptions(model="ftrl", ftrl=params, split=split))
