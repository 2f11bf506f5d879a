"""The index artifact: vocabulary, campaign columns and FAISS index of one catalog version.

Files of a version: manifest.json, vocab.json, campaigns.npz (no pickle), personas.faiss, persona_rows.npy
(the campaign row of each persona vector: a campaign may own several personas).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import read_manifest, resolve, write_artifact
from personabid.errors import ArtifactError
from personabid.index.build import (
    MEMORY_BUDGET_BYTES,
    apply_search_params,
    build,
    choose,
    memory_estimate,
    query_sets,
    tune,
)
from personabid.index.campaigns import CampaignSpec, CampaignTable, build_table
from personabid.index.vocab import Vocabulary
from personabid.progress import progress

log = logging.getLogger(__name__)
KIND = "persona-index"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IndexBundle:
    version: str
    vocab: Vocabulary
    campaigns: CampaignTable
    index: faiss.Index
    persona_rows: np.ndarray  # int32 (n_vectors,)
    manifest: dict[str, Any]


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


def load_index(path: Path) -> IndexBundle:
    """Load and verify an index version (or the current version of an index root)."""
    directory = resolve(path)
    manifest = read_manifest(directory, KIND, (FORMAT_VERSION,))
    vocab = Vocabulary.load(directory / "vocab.json")
    campaigns = CampaignTable.load(directory / "campaigns.npz")
    try:
        index = faiss.read_index(str(directory / "personas.faiss"))
        persona_rows = np.load(directory / "persona_rows.npy", allow_pickle=False)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: unreadable index: {exc}") from exc
    if index.d != vocab.dims or manifest.get("dims") != vocab.dims:
        raise ArtifactError(
            f"{directory}: index has {index.d} dims, vocabulary {vocab.dims}, manifest {manifest.get('dims')}"
        )
    if index.ntotal != len(persona_rows) or index.ntotal != manifest.get("vectors"):
        raise ArtifactError(
            f"{directory}: index holds {index.ntotal} vectors, persona_rows {len(persona_rows)}, "
            f"manifest {manifest.get('vectors')}"
        )
    if len(persona_rows) and (persona_rows.min() < 0 or persona_rows.max() >= len(campaigns)):
        raise ArtifactError(f"{directory}: persona_rows point outside the {len(campaigns)} campaigns")
    apply_search_params(index, manifest.get("index_params", {}))
    return IndexBundle(
        version=manifest["version"],
        vocab=vocab,
        campaigns=campaigns,
        index=index,
        persona_rows=persona_rows.astype(np.int32, copy=False),
        manifest=manifest,
    )
