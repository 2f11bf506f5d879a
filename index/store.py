"""The index artifact: vocabulary, campaign columns and FAISS index of one catalog version.

Files of a version: manifest.json, vocab.json, campaigns.npz (no pickle), personas.faiss, persona_rows.npy
(the campaign row of each persona vector: a campaign may own several personas).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import read_manifest, resolve, write_artifact
from personabid.errors import ArtifactError
from personabid.index.build import apply_search_params, build, choose, realistic_queries, recall_at_k
from personabid.index.campaigns import CampaignSpec, CampaignTable, build_table
from personabid.index.vocab import Vocabulary

KIND = "persona-index"
FORMAT_VERSION = 1
RECALL_K = 10


@dataclass(frozen=True)
class IndexBundle:
    version: str
    vocab: Vocabulary
    campaigns: CampaignTable
    index: faiss.Index
    persona_rows: np.ndarray  # int32 (n_vectors,)
    manifest: dict[str, Any]


def write_index(
    root: Path, vocab: Vocabulary, specs: Sequence[CampaignSpec], index_type: str = "auto", seed: int = 0
) -> Path:
    """Build the index of `specs` and write it as a new version under `root` (made current)."""
    started = time.perf_counter()
    table, personas, persona_rows = build_table(specs)
    if personas.shape[1] != vocab.dims:
        raise ArtifactError(f"personas have {personas.shape[1]} dims, the vocabulary {vocab.dims}")
    choice = choose(len(personas), index_type)
    index = build(personas, choice)
    queries = realistic_queries(personas, min(1000, len(personas)), noise=0.05, seed=seed)
    recall = recall_at_k(index, personas, queries, RECALL_K)
    fields = {
        "dims": vocab.dims,
        "metric": "inner_product",
        "campaigns": len(table),
        "vectors": len(personas),
        "index_type": choice.index_type,
        "index_params": choice.params,
        "recall": {"k": RECALL_K, "queries": len(queries), "value": recall},
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
