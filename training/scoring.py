"""Score a trained model on a log it was not trained on: the same metrics as training's evaluation, and
optionally every row's prediction. How an operator checks yesterday's model on today's traffic."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from personabid.ctr.model import CtrModel
from personabid.progress import progress
from personabid.training.evaluate import report
from personabid.training.logs import DEFAULT_MAX_BAD_FRACTION, BadRows, LogError, featurize
from personabid.training.source import RowSource

log = logging.getLogger(__name__)


def score_log(
    model: CtrModel,
    source: RowSource,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    predictions: Path | None = None,
) -> dict[str, Any]:
    """Metrics of `model` on every readable row of `source`; with `predictions`, also writes a CSV of
    line,click,pctr (the line number in the log, its label, the calibrated prediction)."""
    if model.spec.schema != source.schema:
        raise LogError(
            f"the model was trained on {model.spec.schema} features; a log of {source.schema} fields "
            "cannot supply them"
        )
    bad = BadRows()
    labels, pctrs = [], []
    handle = predictions.open("w") if predictions is not None else None
    try:
        if handle is not None:
            handle.write("line,click,pctr\n")
        with progress(log, "scoring", unit="rows") as bar:
            for chunk in source.chunks(bad):
                pctr = model.pctr(featurize(model.spec, chunk))
                labels.append(chunk.labels)
                pctrs.append(pctr)
                if handle is not None:
                    handle.writelines(
                        f"{line},{int(y)},{p:.6g}\n"
                        for line, y, p in zip(
                            chunk.lines.tolist(), chunk.labels.tolist(), pctr.tolist(), strict=True
                        )
                    )
                bar.update(len(chunk))
    finally:
        if handle is not None:
            handle.close()
    all_labels = np.concatenate(labels) if labels else np.empty(0)
    bad.check(Path(source.describe().get("path", "rows")), len(all_labels), max_bad_fraction)
    return {
        "model": {"version": model.version, "type": model.model_type},
        "data": {**source.describe(), "rows": len(all_labels), **bad.summary(len(all_labels))},
        **report(all_labels, np.concatenate(pctrs).astype(np.float64)),
    }
