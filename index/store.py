"""Writing the index artifact: build, tune and check the FAISS index of one catalog version, then write
the files that personabid.index.bundle reads (the file layout is described there)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import write_artifact
from personabid.errors import ArtifactError
from personabid.index.build import (
    MEMORY_BUDGET_BYTES,
    build,
    choose,
    memory_estimate,
    query_sets,
    tune,
)
from personabid.index.bundle import FORMAT_VERSION, KIND
from personabid.index.campaigns import CampaignSpec, build_table
from personabid.index.vocab import Vocabulary
from personabid.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    index_type: str = "auto"
    min_recall: float = 0.95
    recall_k: int = 100  # the server's default top_k: the candidates a request actually sees
    recall_queries: int = 1000
    memory_budget: int = MEMORY_BUDGET_BYTES
    seed: int = 0


class RecallTooLow(ArtifactError):
    """The index cannot meet the recall target; nothing was written."""


def write_index(
    root: Path,
    vocab: Vocabulary,
    specs: Sequence[CampaignSpec],
    options: BuildOptions = BuildOptions(),
    catalog: dict[str, Any] | None = None,
) -> Path:
    """Build the index of `specs`, measure and tune its recall, and write it under `root` as the new
    current version. Raises RecallTooLow, writing nothing, when the recall target cannot be met."""
    started = time.perf_counter()
    table, personas, persona_rows = build_table(specs)
    if personas.shape[1] != vocab.dims:
        raise ArtifactError(f"personas have {personas.shape[1]} dims, the vocabulary {vocab.dims}")
    choice = choose(len(personas), vocab.dims, options.index_type, options.memory_budget)
    log.info(
        "building a %s index over %d persona vectors of %d campaigns",
        choice.index_type,
        len(personas),
        len(table),
    )
    with progress(log, f"adding {choice.index_type} vectors", total=len(personas), unit="vectors") as bar:
        index = build(personas, choice, bar.update, seed=options.seed)
    count = min(options.recall_queries, len(personas))
    tuning, held_out = query_sets(personas, count, options.recall_k, options.seed)
    params, recall, held = tune(index, choice, tuning, held_out, options.min_recall)
    queries, truth = tuning
    if min(recall, held) < options.min_recall:
        raise RecallTooLow(
            f"{choice.index_type} index reaches recall@{truth.shape[1]} {recall:.4f} (held-out queries "
            f"{held:.4f}) at best, below the target {options.min_recall}"
        )
    fields = {
        "dims": vocab.dims,
        "metric": "inner_product",
        "campaigns": len(table),
        "vectors": len(personas),
        "index_type": choice.index_type,
        "index_params": params,
        "memory_estimate_bytes": memory_estimate(choice.index_type, len(personas), vocab.dims),
        "recall": {
            "k": int(truth.shape[1]),
            "queries": len(queries),
            "query_seed": options.seed,
            "value": recall,
            "held_out": held,
            "target": options.min_recall,
        },
        "catalog": catalog or {},
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return write_artifact(
        root,
        KIND,
        FORMAT_VERSION,
        {
            "vocab.json": vocab.save,
            "campaigns.npz": table.save,
            "personas.faiss": lambda path: faiss.write_index(index, str(path)),
            "persona_rows.npy": lambda path: np.save(path, persona_rows, allow_pickle=False),
        },
        fields,
    )
