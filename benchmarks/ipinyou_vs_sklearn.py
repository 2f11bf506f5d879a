"""The CTR trainers on real traffic, beside scikit-learn's LogisticRegression, in one run.

Run (scikit-learn is a benchmark dependency: pip install -e ".[bench]"):

    .venv/bin/python benchmarks/ipinyou_vs_sklearn.py [--data ../shared/data/ipinyou-2997/train.fm.txt] \
        [--out benchmarks/results/ipinyou.json]

The iPinYou 2997 log (26,773 impressions, 255 clicks) is split by time as `personabid train` splits it:
ordered by (weekday, hour), the newest quarter held out for evaluation (the log's last hour, 19:00), the
tenth before it for calibration, the rest to train on. FTRL and the factorization machine go through the
training pipeline (`train`, the hashed features of the default iPinYou spec: the 16 one-hot fields, no
crosses). LogisticRegression (L2, lbfgs, default C) fits the same training rows, one-hot encoded by the
featindex numbering itself, without hashing. All are judged by AUC (with its 95% interval: 50-odd clicks
are held out) and log loss on the same held-out rows; throughput is training rows per second of fitting,
FTRL and FM single-threaded after their kernels are compiled.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from personabid.ctr.features import default_spec
from personabid.training.evaluate import auc, auc_interval, log_loss
from personabid.training.fm import FmParams
from personabid.training.ftrl import FtrlParams
from personabid.training.logs import BadRows
from personabid.training.source import LogFile
from personabid.training.train import EVALUATION, TRAIN, Split, TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ipinyou-2997" / "train.fm.txt"
SPLIT = Split(calibration=0.1, evaluation=0.25)
EPOCHS = 3


def one_hot(path: Path) -> tuple[csr_matrix, np.ndarray]:
    """The log as scikit-learn takes it: a CSR matrix over the featindex numbering, and the clicks."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    labels = np.array([float(r[0]) for r in rows])
    columns = np.array([int(item.split(":")[0]) for r in rows for item in r[1:]])
    width = len(rows[0]) - 1
    matrix = csr_matrix(
        (np.ones(len(columns)), columns, np.arange(0, len(columns) + 1, width)),
        shape=(len(rows), int(columns.max()) + 1),
    )
    return matrix, labels


def metrics(
    labels: np.ndarray, probabilities: np.ndarray, rows_per_second: float, seconds: float
) -> dict[str, Any]:
    value = auc(labels, probabilities)
    clicks = int(labels.sum())
    return {
        "auc": round(value, 4),
        "auc_ci95": [round(x, 4) for x in auc_interval(value, clicks, len(labels) - clicks)],
        "log_loss": round(log_loss(labels, probabilities), 5),
        "predicted_over_actual": round(float(probabilities.mean() / labels.mean()), 3),
        "train_rows_per_second": round(rows_per_second),
        "fit_seconds": round(seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ipinyou.json")
    args = parser.parse_args()

    log = LogFile(args.data, "ipinyou")
    chunks = list(log.chunks(BadRows()))
    times = np.concatenate([c.time for c in chunks])
    labels = np.concatenate([c.labels for c in chunks])
    parts = SPLIT.parts(len(labels), times)
    held_out = labels[parts == EVALUATION]
    results: dict[str, Any] = {}

    spec = default_spec("ipinyou")
    for name, options in (
        (f"ftrl ({EPOCHS} epochs)", TrainOptions("ftrl", ftrl=FtrlParams(epochs=EPOCHS), split=SPLIT)),
        (f"fm, 8 factors ({EPOCHS} epochs)", TrainOptions("fm", fm=FmParams(epochs=EPOCHS), split=SPLIT)),
    ):
        train(log, spec, options)  # once to compile and warm the caches; the second run is measured
        started = time.perf_counter()
        _, summary = train(log, spec, options)
        seconds = time.perf_counter() - started
        evaluation = summary["evaluation"]
        assert evaluation["rows"] == len(held_out) and evaluation["clicks"] == int(held_out.sum())
        results[name] = {
            "auc": round(evaluation["auc"], 4),
            "auc_ci95": [round(x, 4) for x in evaluation["auc_ci95"]],
            "log_loss": round(evaluation["log_loss"], 5),
            "predicted_over_actual": round(evaluation["predicted_over_actual"], 3),
            "train_rows_per_second": round(summary["training"]["rows_per_second"]),
            "pipeline_seconds": round(seconds, 3),
        }

    matrix, sk_labels = one_hot(args.data)
    assert np.array_equal(sk_labels, labels), "the one-hot rows are the pipeline's rows"
    train_rows = parts == TRAIN
    started = time.perf_counter()
    classifier = LogisticRegression(max_iter=1000).fit(matrix[train_rows], labels[train_rows])
    seconds = time.perf_counter() - started
    results["scikit-learn LogisticRegression (lbfgs, C=1)"] = metrics(
        held_out,
        classifier.predict_proba(matrix[parts == EVALUATION])[:, 1],
        int(train_rows.sum()) / seconds,
        seconds,
    )

    report = {
        "data": {**log.describe(), "rows": len(labels), "clicks": int(labels.sum())},
        "split": {
            "order": "time (weekday, hour)",
            "train": int(train_rows.sum()),
            "evaluation": len(held_out),
            "evaluation_clicks": int(held_out.sum()),
        },
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "models": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
