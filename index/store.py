"""Writing the index artifact: build, tune and check the FAISS index of one catalog version, then write
the files that personabid.index.bundle reads (the file layout is described there)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import write_artifact
from personabid.errors import ArtifactError
from personabid.index.build import MEMORY_BUDGET_BYTES, context_axes, family_axes, memory_estimate
from personabid.index.bundle import FORMAT_VERSION, KIND
from personabid.index.campaigns import CampaignSpec, build_table
from personabid.index.selection import SearchTimer, candidate_types, median_search_us, select
from personabid.index.tuning import checked_queries, recall_queries
from personabid.index.vocab import Vocabulary
from personabid.progress import Progress, progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    index_type: str = "auto"
    min_recall: float = 0.95
    recall_k: int = 100  # the server's default top_k: the candidates a request actually sees
    recall_queries: int = 1000
    memory_budget: int = MEMORY_BUDGET_BYTES
    seed: int = 0
    timer: SearchTimer = median_search_us  # how an auto build times its candidates
    # float32 (n, dims) vectors of real users to tune on (personabid.index.tuning), and where they came
    # from, for the manifest; without them, synthetic user-shaped queries.
    tuning_queries: np.ndarray | None = field(default=None, compare=False, repr=False)
    tuning_origin: str = ""


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
    supplied = options.tuning_queries
    if supplied is not None:
        supplied = checked_queries(supplied, vocab.dims)
    count = min(options.recall_queries, len(personas))
    queries = recall_queries(
        personas, options.recall_k, count, options.seed, context_axes(vocab), family_axes(vocab), supplied
    )
    nonzero = int(np.count_nonzero(personas))  # the sparse copy the server makes counts in memory
    types = (
        candidate_types(len(personas), vocab.dims, options.memory_budget, nonzero)
        if options.index_type == "auto"
        else [options.index_type]
    )
    log.info(
        "building a %s index over %d persona vectors of %d campaigns",
        " or ".join(types),
        len(personas),
        len(table),
    )

    def adding(index_type: str) -> AbstractContextManager[Progress]:
        return progress(log, f"adding {index_type} vectors", total=len(personas), unit="vectors")

    selected = select(personas, types, queries, options.min_recall, options.timer, adding, options.seed)
    choice, index, params = selected.choice, selected.index, selected.params
    recall, held, floor = selected.recall, selected.held_out, selected.floor
    tuning, truth = queries.tuning
    if min(recall, held, floor) < options.min_recall:
        raise RecallTooLow(
            f"{choice.index_type} index reaches recall@{truth.shape[1]} {recall:.4f} on {queries.source} "
            f"queries (held-out {held:.4f}, persona-noise {floor:.4f}) at best, below the target "
            f"{options.min_recall}"
        )
    fields = {
        "dims": vocab.dims,
        "metric": "inner_product",
        "campaigns": len(table),
        "vectors": len(personas),
        "index_type": choice.index_type,
        "index_params": params,
        "memory_estimate_bytes": memory_estimate(choice.index_type, len(personas), vocab.dims, nonzero),
        "recall": {
            "k": int(truth.shape[1]),
            "queries": len(tuning),
            "query_seed": options.seed,
            # user-shaped: index/build.py user_queries, with the vocabulary's context and family axes;
            # supplied: the caller's real user vectors, halved into tuning and held-out queries
            # (index/tuning.py), and query_origin says whence.
            "query_source": queries.source,
            **({"query_origin": options.tuning_origin} if options.tuning_origin else {}),
            "value": recall,
            "held_out": held,
            "persona_noise": floor,
            "target": options.min_recall,
        },
        "catalog": catalog or {},
        # What an auto build measured of each candidate type, and so why it kept this one.
        "selection": [c.record() for c in selected.candidates] if options.index_type == "auto" else [],
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
