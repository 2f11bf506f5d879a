"""The index artifact as the server reads it: vocabulary, campaign columns and FAISS index of one catalog
version. personabid.index.store writes it; this module needs none of the build code, so a server loads
an index without importing it.

Files of a version: manifest.json, vocab.json, campaigns.npz (no pickle), personas.faiss, persona_rows.npy
(the campaign row of each persona vector: a campaign may own several personas).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import read_manifest, resolve
from personabid.errors import ArtifactError
from personabid.index.campaigns import CampaignTable
from personabid.index.sparse import Searcher, searcher_for
from personabid.index.vocab import Vocabulary

KIND = "persona-index"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Recall:
    """The build's measured recall@k of the index against exact search (index/build.py)."""

    k: int
    queries: int  # how many tuning queries, drawn with query_seed (index/build.py query_sets)
    query_seed: int
    value: float  # on the tuning queries
    held_out: float  # on queries the tuning never saw
    target: float
    # user-shaped (synthetic) or supplied (real users' vectors), and where supplied ones came from
    source: str = "user-shaped"
    origin: str = ""
    persona_noise: float | None = None  # the floor on persona-noise queries (index/tuning.py)


@dataclass(frozen=True)
class IndexManifest:
    """What manifest.json says of an index version, read and checked in one place (`read`)."""

    version: str
    campaigns: int
    vectors: int
    dims: int
    index_type: str  # flat, hnsw, ivfflat or ivfpq
    index_params: dict[str, Any]  # search-time parameters the build tuned (efSearch, nprobe, k_factor)
    selection: list[dict[str, Any]]  # an auto build's candidates, as measured (index/selection.py)
    recall: Recall
    build_seconds: float
    memory_estimate_bytes: int
    file_bytes: dict[str, int]  # each file of the version and its size
    catalog: dict[str, Any]  # what the build read: the catalog's path, counts and what it skipped

    @classmethod
    def read(cls, directory: Path) -> IndexManifest:
        """The manifest of the index version in `directory`; ArtifactError names a missing or bad field."""
        data = read_manifest(directory, KIND, (FORMAT_VERSION,))
        try:
            recall = data["recall"]
            return cls(
                version=str(data["version"]),
                campaigns=int(data["campaigns"]),
                vectors=int(data["vectors"]),
                dims=int(data["dims"]),
                index_type=str(data["index_type"]),
                index_params=dict(data.get("index_params", {})),
                recall=Recall(
                    k=int(recall["k"]),
                    queries=int(recall.get("queries", 0)),
                    query_seed=int(recall.get("query_seed", 0)),
                    value=float(recall["value"]),
                    held_out=float(recall.get("held_out", recall["value"])),
                    target=float(recall.get("target", 0.0)),
                    source=str(recall.get("query_source", "user-shaped")),
                    origin=str(recall.get("query_origin", "")),
                    persona_noise=(
                        None if recall.get("persona_noise") is None else float(recall["persona_noise"])
                    ),
                ),
                build_seconds=float(data.get("build_seconds", 0.0)),
                memory_estimate_bytes=int(data.get("memory_estimate_bytes", 0)),
                file_bytes={name: int(entry["bytes"]) for name, entry in data.get("files", {}).items()},
                catalog=dict(data.get("catalog") or {}),
                selection=[dict(entry) for entry in data.get("selection") or []],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{directory}/manifest.json: missing or malformed field {exc}") from exc


@dataclass(frozen=True)
class IndexBundle:
    version: str
    vocab: Vocabulary
    campaigns: CampaignTable
    index: faiss.Index
    persona_rows: np.ndarray  # int32 (n_vectors,)
    manifest: IndexManifest
    # What the match searches: the index, or its lists held sparse where that is cheaper (sparse.py);
    # both answer alike, and both follow the index's search parameters.
    searcher: Searcher


def apply_search_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set the search-time parameters (efSearch, nprobe, quantizer_efSearch, k_factor) that the build
    tuned and the manifest records as index_params: the loader and the build's tuning set them alike."""
    if "efSearch" in params:
        graph = faiss.downcast_index(index)
        assert isinstance(graph, faiss.IndexHNSW), f"efSearch on a {type(graph).__name__}"
        graph.hnsw.efSearch = int(params["efSearch"])
    if "nprobe" in params:
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = int(params["nprobe"])
        if "quantizer_efSearch" in params:
            quantizer = faiss.downcast_index(ivf.quantizer)
            assert isinstance(quantizer, faiss.IndexHNSW), (
                f"quantizer_efSearch on a {type(quantizer).__name__}"
            )
            quantizer.hnsw.efSearch = int(params["quantizer_efSearch"])
    if "k_factor" in params:
        refine = faiss.downcast_index(index)
        assert isinstance(refine, faiss.IndexRefine), f"k_factor on a {type(refine).__name__}"
        refine.k_factor = float(params["k_factor"])


def load_index(path: Path) -> IndexBundle:
    """Load and verify an index version (or the current version of an index root)."""
    directory = resolve(path)
    manifest = IndexManifest.read(directory)
    vocab = Vocabulary.load(directory / "vocab.json")
    campaigns = CampaignTable.load(directory / "campaigns.npz")
    try:
        index = faiss.read_index(str(directory / "personas.faiss"))
        persona_rows = np.load(directory / "persona_rows.npy", allow_pickle=False)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: unreadable index: {exc}") from exc
    if index.d != vocab.dims or manifest.dims != vocab.dims:
        raise ArtifactError(
            f"{directory}: index has {index.d} dims, vocabulary {vocab.dims}, manifest {manifest.dims}"
        )
    if index.ntotal != len(persona_rows) or index.ntotal != manifest.vectors:
        raise ArtifactError(
            f"{directory}: index holds {index.ntotal} vectors, persona_rows {len(persona_rows)}, "
            f"manifest {manifest.vectors}"
        )
    if len(persona_rows) and (persona_rows.min() < 0 or persona_rows.max() >= len(campaigns)):
        raise ArtifactError(f"{directory}: persona_rows point outside the {len(campaigns)} campaigns")
    apply_search_params(index, manifest.index_params)
    return IndexBundle(
        version=manifest.version,
        vocab=vocab,
        campaigns=campaigns,
        index=index,
        persona_rows=persona_rows.astype(np.int32, copy=False),
        manifest=manifest,
        searcher=searcher_for(index),
    )
