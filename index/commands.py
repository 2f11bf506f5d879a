"""`personabid index build` and `personabid index inspect`: the offline index tools."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from personabid.artifact import read_manifest, resolve
from personabid.errors import ArtifactError
from personabid.index.build import INDEX_TYPES
from personabid.index.bundle import FORMAT_VERSION, KIND
from personabid.index.catalog import CatalogError, read_catalog
from personabid.index.store import BuildOptions, write_index
from personabid.index.tuning import TuningQueryError, load_queries
from personabid.index.vocab import Vocabulary

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="build and inspect persona index artifacts")
    tools = index.add_subparsers(dest="index_command", required=True, metavar="COMMAND")

    build = tools.add_parser(
        "build",
        help="build an index version from a campaign catalog",
        description="Validate a campaign catalog (JSON Lines or CSV), build its FAISS index, measure and "
        "tune its recall, and write it as the new current version under --out. A catalog with errors builds "
        "nothing unless --skip-invalid.",
    )
    build.add_argument("--catalog", type=Path, required=True, help="campaigns, .jsonl or .csv")
    build.add_argument("--out", type=Path, required=True, help="index artifact root (versions + CURRENT)")
    build.add_argument(
        "--vocab",
        help="tag vocabulary: a vocab.json, a text file of one tag per line, or 'demo' "
        "(default: the vocabulary of the current version under --out)",
    )
    build.add_argument(
        "--skip-invalid", action="store_true", help="build the valid campaigns, report the rest"
    )
    build.add_argument(
        "--unknown-tags",
        choices=("error", "hash"),
        default="error",
        help="a persona tag the vocabulary lacks is an error (default), or hashed onto a vocabulary axis",
    )
    build.add_argument(
        "--index-type",
        choices=("auto", *INDEX_TYPES),
        default="auto",
        help="auto (default): flat for small catalogs, else the candidate type that searches fastest at "
        "the recall target, measured",
    )
    build.add_argument("--min-recall", type=float, default=0.95, help="recall@K target (default %(default)s)")
    build.add_argument(
        "--recall-k", type=int, default=100, help="K of the recall target (default %(default)s)"
    )
    build.add_argument(
        "--memory-budget-mb",
        type=int,
        default=2048,
        help="auto builds only the types whose memory estimate fits it (IVF-PQ when none does)",
    )
    build.add_argument(
        "--tuning-queries",
        type=Path,
        metavar="FILE.npy",
        help="real user vectors (float (n, dims), non-negative; normalised here) to tune the search on: the "
        "recall target must hold on half of them and on the other, unseen half (default: synthetic "
        "user-shaped queries)",
    )
    build.set_defaults(run=_build)

    inspect = tools.add_parser(
        "inspect",
        help="print a version's manifest and check its files",
        description="Print the manifest of an index version (or of the current version of a root) and "
        "check every file against its sha256. Exit 1 if a check fails.",
    )
    inspect.add_argument("path", type=Path, help="index artifact root or version directory")
    inspect.set_defaults(run=_inspect)


def _vocabulary(option: str | None, out: Path) -> Vocabulary:
    if option == "demo":
        from personabid.world import vocabulary

        return vocabulary()
    if option is None:
        try:
            return Vocabulary.load(resolve(out) / "vocab.json")
        except ArtifactError:
            raise ArtifactError(
                f"{out} has no current version to take a vocabulary from: give --vocab"
            ) from None
    path = Path(option)
    if path.suffix == ".json":
        return Vocabulary.load(path)
    tags = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return Vocabulary(tuple(tags))


def _build(args: argparse.Namespace) -> int:
    vocab = _vocabulary(args.vocab, args.out)
    tuning = None
    if args.tuning_queries is not None:
        # Checked before the catalog is read: a bad file fails in a second, not after a long build.
        try:
            tuning = load_queries(args.tuning_queries, vocab.dims)
        except TuningQueryError as exc:
            print(f"personabid index build: --tuning-queries {args.tuning_queries}: {exc}", file=sys.stderr)
            return 2
    catalog = read_catalog(args.catalog, vocab, hash_unknown_tags=args.unknown_tags == "hash")
    for issue in catalog.issues:
        log.warning("%s", issue)
    if catalog.issues and not args.skip_invalid:
        print(f"personabid index build: {CatalogError(catalog.issues)}", file=sys.stderr)
        print("nothing was built (--skip-invalid builds the valid campaigns)", file=sys.stderr)
        return 1
    if not catalog.campaigns:
        print("personabid index build: no active, valid campaign in the catalog", file=sys.stderr)
        return 1
    info = {
        "path": str(args.catalog),
        "sha256": catalog.sha256,
        "campaigns": len(catalog.campaigns),
        "inactive": catalog.inactive,
        "skipped_invalid": len(catalog.issues),
        "unknown_tags_hashed": len(catalog.unknown_tags),
    }
    options = BuildOptions(
        index_type=args.index_type,
        min_recall=args.min_recall,
        recall_k=args.recall_k,
        memory_budget=args.memory_budget_mb << 20,
        tuning_queries=tuning,
        tuning_origin="" if tuning is None else str(args.tuning_queries),
    )
    version = write_index(args.out, vocab, catalog.campaigns, options, catalog=info)
    manifest = read_manifest(version, KIND, (FORMAT_VERSION,))
    shown = ("version", "campaigns", "vectors", "index_type", "index_params", "recall", "selection")
    summary = {k: manifest[k] for k in shown if k in manifest}
    print(json.dumps({"directory": str(version), **summary, "skipped": len(catalog.issues)}, indent=2))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    directory = resolve(args.path)
    try:
        manifest = read_manifest(directory, KIND, (FORMAT_VERSION,))
    except ArtifactError as exc:
        print(f"personabid index inspect: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"directory": str(directory), "checksums": "ok", **manifest}, indent=2))
    return 0
