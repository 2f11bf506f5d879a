"""Index builds at catalog scale: build time, peak memory, recall and query latency, per catalog size.

Run:

    .venv/bin/python benchmarks/index_build.py [--sizes 10000,100000,1000000] \
        [--out benchmarks/results/index_build.json]

For each size, the demo world's generator makes that many campaigns and `write_index` builds the index
artifact as `personabid index build` does (auto index type, recall tuning, the default memory budget).
Then a fresh process loads the artifact with `load_index` and times one-query searches (k=100, one FAISS
thread, as the server runs) with realistic queries, beside an exact flat search over the same vectors:
the machine is shared, so a latency means something only next to a reference measured in the same run.

A threshold study follows, the evidence for the type thresholds of index/build.py: flat against HNSW
one-query latency at 2k to 100k vectors (FLAT_MAX), and HNSW against IVF-PQ memory at 1M campaigns.

Every measurement runs in its own child process (this script, re-invoked with a hidden --job), so that
its peak RSS is its own, and under a time limit: a job that runs out of time is recorded as timed out.
Results are written after every job, so a long run that is stopped still leaves what it measured.
`--render FILE` prints the markdown tables of an existing results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from personabid.artifact import write_atomic
from personabid.bench.machine import machine_info
from personabid.errors import ArtifactError
from personabid.index.build import (
    FLAT_MAX,
    build,
    choose,
    memory_estimate,
    query_sets,
    tune,
    user_queries,
)
from personabid.index.bundle import IndexManifest, apply_search_params, load_index
from personabid.index.store import BuildOptions, write_index
from personabid.world import World

log = logging.getLogger("index_build")

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
THRESHOLD_SIZES = (2_000, 5_000, 10_000, 25_000, 50_000, 100_000)
MEMORY_STUDY_SIZE = 1_000_000
WORLD_SEED = 7  # the demo world's seed
QUERY_SEED = 1  # not the build's recall seed (0): latency and held-out recall use unseen queries
TOP_K = 100  # the server's default top_k
BLOCK = 100  # queries per block when two indexes are timed in turns
WARMUP = 50
MB = 1 << 20

Job = dict[str, Any]


# --- measurements that every job uses ---------------------------------------------------------------


def rss_kb(field: str = "VmRSS") -> int:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS, so that the next phase's peak can be read on its own.

    ru_maxrss cannot be reset; writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def max_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles_us(ns: np.ndarray) -> dict[str, float]:
    us = ns / 1000.0
    return {f"p{p}_us": round(float(np.percentile(us, p)), 1) for p in (50, 90, 99)}


def timed_searches(
    indexes: dict[str, faiss.Index], queries: np.ndarray, k: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One-query searches of every query on every index: latencies (ns) and labels, by index name.

    The indexes take turns by blocks of BLOCK queries rather than one after the other, so that a burst of
    load from other work on the machine falls on all of them alike and their ratio stays meaningful.
    Blocks rather than single queries, so that a flat scan does not evict a graph from the cache between
    two of its queries (the server only ever runs one index).
    """
    singles = [queries[i : i + 1] for i in range(len(queries))]
    for index in indexes.values():
        for query in singles[:WARMUP]:
            index.search(query, k)
    times = {name: np.empty(len(singles), dtype=np.int64) for name in indexes}
    labels = {name: np.empty((len(singles), k), dtype=np.int64) for name in indexes}
    for start in range(0, len(singles), BLOCK):
        for name, index in indexes.items():
            for i in range(start, min(start + BLOCK, len(singles))):
                began = time.perf_counter_ns()
                _, found = index.search(singles[i], k)
                times[name][i] = time.perf_counter_ns() - began
                labels[name][i] = found[0]
    return times, labels


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact neighbours `truth` that `found` holds, over all queries (recall@k)."""
    hits = sum(len(set(f) & set(t)) for f, t in zip(found.tolist(), truth.tolist(), strict=True))
    return hits / truth.size


def latency_against_flat(index: faiss.Index, personas: np.ndarray, queries: int, k: int) -> dict[str, Any]:
    """Latency of `index` next to an exact flat search over the same vectors, on one FAISS thread."""
    faiss.omp_set_num_threads(1)  # as the server runs: one thread per query, processes for parallelism
    flat = faiss.IndexFlatIP(personas.shape[1])
    flat.add(personas)
    query_vectors = user_queries(personas, queries, seed=QUERY_SEED)
    times, labels = timed_searches({"index": index, "flat": flat}, query_vectors, k)
    index_p, flat_p = percentiles_us(times["index"]), percentiles_us(times["flat"])
    return {
        "queries": queries,
        "k": k,
        "query_seed": QUERY_SEED,
        "index": index_p,
        "flat": flat_p,
        "ratio_p50": round(index_p["p50_us"] / flat_p["p50_us"], 3),
        "ratio_p99": round(index_p["p99_us"] / flat_p["p99_us"], 3),
        "held_out_recall": round(overlap(labels["index"], labels["flat"]), 4),
    }


def index_memory(path: Path, params: dict[str, Any]) -> tuple[faiss.Index, float]:
    """The FAISS index in `path` and the resident memory that loading it took (MB)."""
    before = rss_kb()
    index = faiss.read_index(str(path))
    apply_search_params(index, params)
    return index, (rss_kb() - before) / 1024


def world_personas(n_campaigns: int, seed: int) -> np.ndarray:
    specs, _ = World(seed).campaigns(n_campaigns)
    return np.concatenate([s.personas for s in specs]).astype(np.float32)


class LogEvents(logging.Handler):
    """Keeps the index builder's log lines with their time since the build started (its phases)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = time.perf_counter()
        self.events: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((round(time.perf_counter() - self.started, 2), record.getMessage()))


def phases(events: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The build's log lines without its progress lines, but for the last (the rate of adding)."""
    progress = [e for e in events if e[1].startswith("adding ")]
    return sorted([e for e in events if not e[1].startswith("adding ")] + progress[-1:])


# --- jobs: each runs in a child process and returns a JSON-able dict -----------------------------------


def job_build(job: Job) -> dict[str, Any]:
    """Generate `n` campaigns and build their index artifact as an operator does (write_index)."""
    n, directory = job["n"], Path(job["dir"])
    began = time.perf_counter()
    world = World(job["seed"])
    specs, _ = world.campaigns(n)
    generation_seconds = time.perf_counter() - began
    generation = {"seconds": round(generation_seconds, 2), "rss_mb": round(rss_kb() / 1024, 1)}
    # The catalog stays in memory during the build, as in `personabid index build`; the build's own
    # peak is read separately so that what the index needs is not hidden by what the generator left.
    phase_peak = reset_peak_rss()
    events = LogEvents()
    logging.getLogger("personabid.index").addHandler(events)
    began = time.perf_counter()
    version = write_index(
        directory / "index", world.vocab, specs, BuildOptions(memory_budget=job["memory_budget"])
    )
    wall = time.perf_counter() - began
    peak_total = max_rss_mb()
    peak_build = rss_kb("VmHWM") / 1024 if phase_peak else None
    manifest = IndexManifest.read(version)
    # The flat reference and the memory study need the raw vectors; saved after the peaks are read.
    np.save(directory / "personas.npy", np.concatenate([s.personas for s in specs]).astype(np.float32))
    return {
        "campaigns": n,
        "vectors": manifest.vectors,
        "generation": generation,
        "version_dir": str(version),
        "index_type": manifest.index_type,
        "index_params": manifest.index_params,
        "recall": dataclasses.asdict(manifest.recall),
        "build_seconds_manifest": manifest.build_seconds,
        "build_seconds_wall": round(wall, 2),
        "memory_estimate_mb": round(manifest.memory_estimate_bytes / MB, 1),
        "peak_rss_mb": round(peak_total, 1),
        "peak_rss_build_mb": None if peak_build is None else round(peak_build, 1),
        "build_extra_rss_mb": None if peak_build is None else round(peak_build - generation["rss_mb"], 1),
        "artifact_mb": round(sum(manifest.file_bytes.values()) / MB, 1),
        "index_file_mb": round(manifest.file_bytes["personas.faiss"] / MB, 1),
        "build_log": phases(events.events),
    }


def job_query(job: Job) -> dict[str, Any]:
    """Load the artifact as the server does and time its searches against exact flat search."""
    directory = Path(job["dir"])
    version = Path(job["version_dir"])
    manifest = IndexManifest.read(version)
    index, index_rss = index_memory(version / "personas.faiss", manifest.index_params)
    del index
    before = rss_kb()
    began = time.perf_counter()
    bundle = load_index(directory / "index")
    load_seconds = time.perf_counter() - began
    bundle_rss = (rss_kb() - before) / 1024  # index, campaign table and vocabulary, as the server holds
    personas = np.load(directory / "personas.npy")
    return {
        "index_rss_mb": round(index_rss, 1),
        "bundle_rss_mb": round(bundle_rss, 1),
        "load_seconds": round(load_seconds, 2),
        **latency_against_flat(bundle.index, personas, job["queries"], TOP_K),
        "peak_rss_mb": round(max_rss_mb(), 1),
    }


def build_tuned(vectors: np.ndarray, index_type: str, target: float) -> tuple[faiss.Index, dict[str, Any]]:
    """An index of `index_type`, tuned as write_index tunes it (same queries, same target)."""
    choice = choose(len(vectors), vectors.shape[1], index_type)
    began = time.perf_counter()
    index = build(vectors, choice)
    build_seconds = time.perf_counter() - began
    tuning_set, held_set = query_sets(vectors, min(1000, len(vectors)), TOP_K, seed=0)
    events = LogEvents()  # the tuning steps: how recall grows with efSearch or nprobe
    logging.getLogger("personabid.index").addHandler(events)
    params, recall, held_recall = tune(index, choice, tuning_set, held_set, target)
    logging.getLogger("personabid.index").removeHandler(events)
    target_met = min(recall, held_recall) >= target
    if not target_met:
        # Out of reach: tune() ends on its last, dearest step (an exhaustive nprobe); measure instead at
        # the cheapest step that reaches the best recall it found, as an operator would run it.
        params, recall, held_recall = tune(index, choice, tuning_set, held_set, recall - 0.0005)
    apply_search_params(index, params)
    return index, {
        "index_type": index_type,
        "index_params": params,
        "recall": round(recall, 4),
        "target_met": target_met,
        "tuning": [message for _, message in events.events if message.startswith("tuning:")],
        "build_seconds": round(build_seconds, 2),
        "memory_estimate_mb": round(
            memory_estimate(index_type, len(vectors), vectors.shape[1], int(np.count_nonzero(vectors))) / MB,
            1,
        ),
    }


def job_flat_vs_hnsw(job: Job) -> dict[str, Any]:
    """Flat against HNSW (tuned to the recall target) one-query latency at each size of the study."""
    sizes = job["sizes"]
    # Campaigns own 1.15 personas on average: generate enough campaigns for the largest size.
    personas = world_personas(math.ceil(max(sizes) / 1.1), job["seed"])
    if len(personas) < max(sizes):
        raise ValueError(f"{len(personas)} personas generated, fewer than the {max(sizes)} needed")
    threads = faiss.omp_get_max_threads()
    rows = []
    for n in sizes:
        vectors = np.ascontiguousarray(personas[:n])
        faiss.omp_set_num_threads(threads)  # builds use every core, as write_index does
        hnsw, built = build_tuned(vectors, "hnsw", job["min_recall"])
        latency = latency_against_flat(hnsw, vectors, job["queries"], TOP_K)
        rows.append({"vectors": n, "hnsw": built, **latency})
        log.info("flat vs hnsw at %d: %s", n, rows[-1])
    return {"rows": rows}


def job_build_raw(job: Job) -> dict[str, Any]:
    """Build one index type over the saved personas of a size, for the memory study; keeps the file."""
    personas = np.load(job["personas"])
    index, built = build_tuned(personas, job["index_type"], job["min_recall"])
    peak = max_rss_mb()
    faiss.write_index(index, job["index_file"])
    return {
        "vectors": len(personas),
        **built,
        "index_file_mb": round(Path(job["index_file"]).stat().st_size / MB, 1),
        "peak_rss_mb": round(peak, 1),
    }


def job_query_raw(job: Job) -> dict[str, Any]:
    """Memory and latency of an index file written by job_build_raw, in a fresh process."""
    index, index_rss = index_memory(Path(job["index_file"]), job["index_params"])
    personas = np.load(job["personas"])
    return {
        "index_rss_mb": round(index_rss, 1),
        **latency_against_flat(index, personas, job["queries"], TOP_K),
    }


JOBS: dict[str, Callable[[Job], dict[str, Any]]] = {
    "build": job_build,
    "query": job_query,
    "flat_vs_hnsw": job_flat_vs_hnsw,
    "build_raw": job_build_raw,
    "query_raw": job_query_raw,
}


def run_child(job: Job) -> None:
    try:
        result = JOBS[job["kind"]](job)
    except ArtifactError as exc:  # RecallTooLow among them: a finding, not a crash
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(job["result"]).write_text(json.dumps(result, indent=2) + "\n")


# --- the parent: runs the jobs, each in a child process under a time limit ------------------------


def run_job(job: Job, timeout: float, scratch: Path) -> dict[str, Any]:
    """Run `job` in a child process; its result, or its status when it failed or ran out of time."""
    if timeout <= 0:
        return {"status": "timeout", "timeout_seconds": 0}
    result_file = scratch / f"{job['kind']}-{job.get('n', 'x')}-{time.monotonic_ns()}.json"
    job = {**job, "result": str(result_file)}
    log.info("job %s (limit %.0f s; load average %.2f)", job["kind"], timeout, os.getloadavg()[0])
    began = time.perf_counter()
    try:
        # stdout and stderr are this process's: the child's progress lines show in the same log.
        done = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)], timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("job %s timed out after %.0f s", job["kind"], timeout)
        return {"status": "timeout", "timeout_seconds": round(timeout)}
    seconds = round(time.perf_counter() - began, 1)
    if done.returncode != 0 or not result_file.is_file():
        return {"status": "failed", "returncode": done.returncode, "seconds": seconds}
    result = json.loads(result_file.read_text())
    return {"status": "failed" if "error" in result else "ok", "seconds": seconds, **result}


def bench_size(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Build and query one catalog size, both within one time limit."""
    directory = work / str(n)
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.timeout_minutes * 60
    common = {"n": n, "dir": str(directory), "seed": args.seed}
    built = run_job(
        {"kind": "build", **common, "memory_budget": args.memory_budget_mb * MB},
        args.timeout_minutes * 60,
        work,
    )
    entry: dict[str, Any] = {"campaigns": n, "build": built}
    if built["status"] == "ok":
        job = {"kind": "query", **common, "version_dir": built["version_dir"], "queries": args.queries}
        entry["query"] = run_job(job, deadline - time.monotonic(), work)
    statuses = {entry["build"]["status"], entry.get("query", {}).get("status", "ok")}
    entry["status"] = "ok" if statuses == {"ok"} else "timeout" if "timeout" in statuses else "failed"
    return entry


def memory_study(results: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """HNSW against IVF-PQ at --memory-study-size campaigns: the type the catalog build chose is taken
    from it; the other is built here over the same vectors, tuned to the same recall target."""
    campaigns = args.memory_study_size
    size = next((s for s in results["sizes"] if s["campaigns"] == campaigns), None)
    if size is None or size["status"] != "ok":
        return {"status": "skipped", "reason": f"no completed {campaigns}-campaign build"}
    built, queried = size["build"], size["query"]
    study: dict[str, Any] = {
        "campaigns": campaigns,
        "vectors": built["vectors"],
        built["index_type"]: {
            "source": "catalog build",
            **{k: built[k] for k in ("index_params", "memory_estimate_mb", "index_file_mb")},
            "recall": built["recall"]["value"],
            "build_seconds": built["build_seconds_manifest"],
            "index_rss_mb": queried["index_rss_mb"],
            "p50_us": queried["index"]["p50_us"],
            "flat_p50_us": queried["flat"]["p50_us"],
            "held_out_recall": queried["held_out_recall"],
        },
    }
    personas = str(work / str(campaigns) / "personas.npy")
    for index_type in ("hnsw", "ivfflat", "ivfpq"):
        if index_type in study:
            continue
        index_file = str(work / f"raw-{index_type}.faiss")
        job = {"personas": personas, "index_file": index_file, "min_recall": args.min_recall}
        raw = run_job({"kind": "build_raw", "index_type": index_type, **job}, args.timeout_minutes * 60, work)
        entry = {"source": "built for the study", **raw}
        if raw["status"] == "ok":
            query = {"kind": "query_raw", **job, "index_params": raw["index_params"], "queries": args.queries}
            queried_raw = run_job(query, args.timeout_minutes * 60, work)
            entry["query"] = queried_raw
            if queried_raw["status"] == "ok":
                entry.update(
                    index_rss_mb=queried_raw["index_rss_mb"],
                    p50_us=queried_raw["index"]["p50_us"],
                    flat_p50_us=queried_raw["flat"]["p50_us"],
                    held_out_recall=queried_raw["held_out_recall"],
                )
        study[index_type] = entry
    return study


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, json.dumps(results, indent=2) + "\n")


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="index-build-bench-", dir=args.work_dir))
    results: dict[str, Any] = {
        "benchmark": "index_build",
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {
            "world_seed": args.seed,
            "queries": args.queries,
            "k": TOP_K,
            "min_recall": args.min_recall,
            "memory_budget_mb": args.memory_budget_mb,
            "timeout_minutes": args.timeout_minutes,
            "flat_max": FLAT_MAX,
        },
        "load_average_start": os.getloadavg(),
        "sizes": [],
    }
    try:
        for n in args.sizes:
            results["sizes"].append(bench_size(n, args, work))
            write_results(results, args.out)
        study = {"kind": "flat_vs_hnsw", "sizes": args.threshold_sizes, "seed": args.seed}
        study |= {"queries": args.queries, "min_recall": args.min_recall}
        results["thresholds"] = {"flat_vs_hnsw": run_job(study, args.timeout_minutes * 60, work)}
        write_results(results, args.out)
        results["thresholds"]["hnsw_vs_ivfpq_memory"] = memory_study(results, args, work)
    finally:
        results["load_average_end"] = os.getloadavg()
        write_results(results, args.out)
        if not args.keep_artifacts:
            shutil.rmtree(work, ignore_errors=True)
    return results


# --- the markdown tables of a results file ----------------------------------------------------------


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def size_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| campaigns | vectors | type | params | generation s | build s | peak RSS MB (above catalog) "
        "| artifact MB | recall@100 (build / held-out) | p50 us | p99 us | flat p50 us | ratio p50 / p99 |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        b, q = size["build"], size.get("query", {})
        if b["status"] != "ok":
            lines.append(f"| {size['campaigns']:,} | | {b['status']} | | | | | | | | | | |")
            continue
        if q.get("status") != "ok":
            q = {"index": {}, "flat": {}, "held_out_recall": "-", "ratio_p50": "-", "ratio_p99": "-"}
        lines.append(
            f"| {size['campaigns']:,} | {b['vectors']:,} | {b['index_type']} | {_params(b['index_params'])} "
            f"| {b['generation']['seconds']} | {b['build_seconds_manifest']} "
            f"| {b['peak_rss_mb']:,.0f} ({b['build_extra_rss_mb']:,.0f}) | {b['artifact_mb']:,.0f} "
            f"| {b['recall']['value']:.4f} / {q['held_out_recall']} | {q['index'].get('p50_us', '-')} "
            f"| {q['index'].get('p99_us', '-')} | {q['flat'].get('p50_us', '-')} "
            f"| {q['ratio_p50']} / {q['ratio_p99']} |"
        )
    return lines


def flat_vs_hnsw_table(study: dict[str, Any]) -> list[str]:
    if study.get("status") != "ok":
        return [f"flat vs HNSW: {study.get('status')}"]
    lines = [
        "| vectors | flat p50 us | HNSW p50 us | HNSW / flat | HNSW efSearch "
        "| HNSW recall (build / held-out) | HNSW build s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in study["rows"]:
        h = row["hnsw"]
        lines.append(
            f"| {row['vectors']:,} | {row['flat']['p50_us']} | {row['index']['p50_us']} | {row['ratio_p50']} "
            f"| {h['index_params'].get('efSearch')} | {h['recall']} / {row['held_out_recall']} "
            f"| {h['build_seconds']} |"
        )
    return lines


def memory_table(study: dict[str, Any]) -> list[str]:
    if "vectors" not in study:
        return [f"HNSW vs IVF-PQ memory: {study.get('status')} ({study.get('reason', '')})"]
    lines = [
        "| type | source | params | index file MB | index RSS MB | estimate MB | recall (build / held-out) "
        "| p50 us | flat p50 us | build s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index_type in ("hnsw", "ivfflat", "ivfpq"):
        e = study.get(index_type, {})
        if "index_rss_mb" not in e:
            lines.append(f"| {index_type} | {e.get('status', 'missing')} | | | | | | | | |")
            continue
        lines.append(
            f"| {index_type} | {e['source']} | {_params(e['index_params'])} | {e['index_file_mb']:,} "
            f"| {e['index_rss_mb']:,} | {e['memory_estimate_mb']:,} "
            f"| {e['recall']:.4f} / {e['held_out_recall']} | {e['p50_us']} | {e['flat_p50_us']} "
            f"| {e['build_seconds']} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    thresholds = results.get("thresholds", {})
    parts = [
        *size_table(results),
        "",
        *flat_vs_hnsw_table(thresholds.get("flat_vs_hnsw", {"status": "not run"})),
        "",
        *memory_table(thresholds.get("hnsw_vs_ivfpq_memory", {"status": "not run"})),
    ]
    return "\n".join(parts) + "\n"


# --- command line -------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int_list, default=list(DEFAULT_SIZES), help="catalog sizes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/index_build.json"))
    parser.add_argument("--queries", type=int, default=2000, help="timed queries per index")
    parser.add_argument("--threshold-sizes", type=int_list, default=list(THRESHOLD_SIZES))
    parser.add_argument("--min-recall", type=float, default=BuildOptions().min_recall)
    parser.add_argument("--memory-budget-mb", type=int, default=BuildOptions().memory_budget // MB)
    parser.add_argument(
        "--memory-study-size", type=int, default=MEMORY_STUDY_SIZE, help="campaigns of the HNSW/IVF-PQ study"
    )
    parser.add_argument("--seed", type=int, default=WORLD_SEED, help="demo world seed")
    parser.add_argument("--timeout-minutes", type=float, default=45.0, help="limit per size and per study")
    parser.add_argument("--work-dir", type=Path, default=None, help="where artifacts are built (a temp dir)")
    parser.add_argument("--keep-artifacts", action="store_true")
    parser.add_argument("--render", type=Path, help="print the tables of a results file and exit")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s: %(message)s")
    if args.job:
        run_child(json.loads(args.job))
        return 0
    if args.render:
        print(render(json.loads(args.render.read_text())), end="")
        return 0
    try:
        results = run(args)
    except ArtifactError as exc:
        log.error("%s", exc)
        return 1
    print(render(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
