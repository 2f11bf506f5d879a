"""The end-to-end benchmark's targets, the Redis block's command, the recall on user-like queries and the
py-spy fold: what `personabid bench` reports beside today's figures, checked on fixtures (no load)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from benchmarks.check_results import target_problems
from personabid.bench import markdown
from personabid.bench.pyspy import fold
from personabid.bench.recall import user_recall
from personabid.bench.runner import FULL, summarize
from personabid.bench.services import bidder_command
from personabid.bench.targets import targets
from personabid.index.bundle import load_index

SIZE = FULL.sweep_size
PLAN = dataclasses.replace(FULL, sizes=(SIZE,))  # the fixture's runs are of the sweep size only
SERVICES = {f"bidder-{SIZE}-w1": {"idle_cpu_ms_per_s": 36.0}}  # 10 us per request at 3,600/s
PROFILE = {
    "requests": 10,
    "index_type": "hnsw",
    "median_us": {"decode": 3.0, "encode": 1.0, "total": 400.0, "total_http": 380.0, "servicer_call": 420.0},
    "mean_us": {
        "decode": 3.5,
        "encode": 1.5,
        "total": 450.0,
        "total_http": 430.0,
        "servicer_call": 470.0,
        "servicer_call_cpu": 460.0,
    },
}


def _run(
    block: str, service: str, rpc: str, mode: str, throughput: float, p99: float, **extra: Any
) -> dict[str, Any]:
    return {
        "block": block, "service": service, "campaigns": SIZE, "rpc": rpc, "mode": mode,
        "throughput_rps": throughput, "latency": {"p99_us": p99}, "error_rate": 0.0, "no_bid_rate": 0.0,
        "server_cpu_us_per_request": 300.0, "client_cpu_us_per_request": 100.0, **extra,
    }  # fmt: skip


def _runs() -> list[dict[str, Any]]:
    runs = [
        _run("catalog", "echo", "unary", "closed", 6000, 50),
        _run("catalog", "echo", "stream", "closed", 9000, 40),
    ]
    runs += [_run("catalog", "bidder", "unary", "closed", 3600, 90)]  # 0.6x: met
    runs += [_run("catalog", "bidder", "stream", "closed", 2700, 80)]  # 0.3x: not met
    runs += [
        _run("catalog", "http-echo", "http", "closed", 4000, 60),
        _run("catalog", "bidder", "http", "closed", 800, 90),
    ]
    runs += [
        _run("half-load", name, "unary", "open", 1800, p99, offered_rps=1800)
        for name, p99 in (("echo", 100), ("bidder", 400))
    ]
    for rpc in ("unary", "stream"):
        runs += [
            _run("redis", "bidder", rpc, "closed", 3000, 90),
            _run("redis", "bidder-redis", rpc, "closed", 2700, 95),
        ]
    return runs  # fmt: skip


RECALL = {
    str(SIZE): {
        "k": 100, "queries": 10, "recall": 0.97, "load_requests_recall": 0.99, "target": 0.95,
        "index_type": "ivfflat", "index_params": {"nprobe": 8}, "persona_noise_recall": 0.99,
        "profiles_found": 1.0,
    },
}  # fmt: skip


def _summary() -> dict[str, Any]:
    return summarize(_runs(), PLAN, PROFILE, SERVICES, RECALL)


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows by target, without the catalog size the fixture's are all at."""
    return {row["target"].removesuffix(f" ({SIZE:,} campaigns)"): row for row in rows}


def test_each_target_is_reported_with_todays_figure_and_the_runs() -> None:
    rows = _by_name(_summary()["targets"])
    unary = rows["gRPC unary throughput / echo floor"]
    assert (unary["today"], unary["now"], unary["met"]) == (0.17, 0.6, True)
    stream = rows["gRPC stream throughput / streaming echo floor"]
    assert (stream["today"], stream["now"], stream["met"]) == (0.17, 0.3, False)


def test_the_redis_target_is_the_throughput_with_redis_over_the_throughput_in_process() -> None:
    rows = _by_name(_summary()["targets"])
    assert rows["unary throughput with --redis-url / in process"]["now"] == 0.9
    assert rows["unary throughput with --redis-url / in process"]["today_text"] == "not measured"


def test_the_open_loop_target_is_the_p99_over_the_echos_at_the_same_offered_rate() -> None:
    summary = _summary()
    row = _by_name(summary["targets"])[
        "open-loop p99 at half the bidder's maximum / echo p99 at the same rate"
    ]
    assert (summary["half_load"]["offered_rps"], row["now"], row["met"]) == (1800, 4.0, False)


def test_the_unaccounted_cpu_is_counted_against_the_echo_at_the_same_rate() -> None:
    cost = _summary()["cost_per_request_us"]
    # At half load (1,800/s both): 300 (bidder) - 300 (echo) - (460 - 3.5 - 1.5) (the servicer's call in CPU
    # time beyond decode and encode) - 20 (background: 36 ms/s at 1,800/s)
    assert (cost["in_process_path"], cost["same_rate"]["background"], cost["unaccounted"]) == (
        455.0,
        20.0,
        -475.0,
    )


def test_the_closed_loops_residual_is_kept_beside() -> None:
    cost = _summary()["cost_per_request_us"]
    # 300 - 300 - 455 - 10 (background: 36 ms/s at the closed loop's 3,600/s)
    assert (cost["background"], cost["residual"]) == (10.0, -465.0)


def test_a_target_of_a_size_the_plan_does_not_run_is_not_measured_and_not_a_problem() -> None:
    row = next(r for r in targets(_summary(), PLAN) if "1,000,000" in r["target"])
    assert (row["now"], row["met"], row["in_plan"]) == (None, None, False)
    assert target_problems([row]) == []


def test_targets_not_met_are_not_problems_of_the_results() -> None:
    rows = _summary()["targets"]
    assert any(row["met"] is False for row in rows)
    assert target_problems(rows) == []


def test_the_checker_names_a_target_the_plan_measures_but_the_run_lacks() -> None:
    rows = [row for row in _summary()["targets"] if row["in_plan"]]
    broken = [{**rows[0], "now": None, "met": None}]
    assert target_problems(broken) == [
        f"summary.targets[0] ({rows[0]['target']}): not measured, though the plan measures it"
    ]


def test_the_checker_names_a_recall_outside_zero_to_one() -> None:
    row = next(r for r in _summary()["targets"] if r["unit"] == "recall")
    assert target_problems([{**row, "now": 1.5, "met": True}]) == [
        f"summary.targets[0] ({row['target']}): recall 1.5 is not in [0, 1]"
    ]


def _results(summary: dict[str, Any]) -> dict[str, Any]:
    """A results.json of the fixture's summary, as `personabid bench` writes it."""
    machine = {
        "cpu": "cpu", "cores": 2, "memory_gib": 1, "kernel": "k", "python": "3", "grpcio": "1", "faiss": "1",
        "loadavg_start": [1.0], "loadavg_end": [1.0],
    }  # fmt: skip
    return {
        "summary": summary, "machine": machine, "plan": dataclasses.asdict(PLAN), "started_utc": "now",
        "seconds": 1.0, "profile": PROFILE,
    }  # fmt: skip


def _with_handler_length() -> list[dict[str, Any]]:
    """The fixture's runs and a handler-length block: the echo at 6,000/s (300 us a call), an echo working
    the bidder's 500 us path at 1,000/s (900 us a call: 400 of transport), the bidder at 800/s (1,100 us
    a call, 500 of path)."""
    block = [
        _run("handler-length", "echo", "unary", "closed", 6000, 50),
        _run("handler-length", "echo-working", "unary", "closed", 1000, 70, work_us=500.0, work_share=1.0),
        _run("handler-length", "echo-working", "unary", "closed", 3000, 60, work_us=125.0, work_share=0.25),
        _run("handler-length", "bidder", "unary", "closed", 800, 90, path_cpu_us_per_request=500.0),
    ]
    block[1]["server_cpu_us_per_request"] = 900.0
    block[3]["server_cpu_us_per_request"] = 1100.0
    return [*_runs(), *block]


HANDLER_SERVICES = {**SERVICES, f"bidder-{SIZE}-w1-handler": {"idle_cpu_ms_per_s": 8.0}}  # 10 us at 800/s
HANDLER_PROFILE = {**PROFILE, "mean_us": {"decode": 3.5, "encode": 1.5, "total": 450.0, "to_response": 15.0}}


def test_a_working_echos_transport_is_its_cpu_less_its_work() -> None:
    found = summarize(_with_handler_length(), PLAN, HANDLER_PROFILE, HANDLER_SERVICES, RECALL)[
        "handler_length"
    ]
    by_share = {level["work_share"]: level for level in found["levels"]}
    assert (by_share[1.0]["transport_us"], by_share[0.25]["transport_us"]) == (400.0, 175.0)


def test_each_handler_length_is_read_against_the_echo_of_the_same_block() -> None:
    found = summarize(_with_handler_length(), PLAN, HANDLER_PROFILE, HANDLER_SERVICES, RECALL)[
        "handler_length"
    ]
    by_share = {level["work_share"]: level for level in found["levels"]}
    assert (by_share[1.0]["throughput_ratio"], by_share[0.25]["throughput_ratio"]) == (0.167, 0.5)


def test_the_bidder_is_accounted_against_the_transport_at_its_handlers_length() -> None:
    found = summarize(_with_handler_length(), PLAN, HANDLER_PROFILE, HANDLER_SERVICES, RECALL)[
        "handler_length"
    ]
    # 1,100 (bidder) - 400 (transport with 500 us of work) - (500 + 15) (its path and to_response) - 10
    assert (found["background"], found["unaccounted"]) == (10.0, 175.0)


def test_the_transport_at_a_path_between_two_working_echoes_lies_between_theirs() -> None:
    runs = _with_handler_length()
    runs[-1]["path_cpu_us_per_request"] = 312.5  # halfway from 125 us (175 of transport) to 500 (400)
    found = summarize(runs, PLAN, HANDLER_PROFILE, HANDLER_SERVICES, RECALL)["handler_length"]
    assert found["transport_at_path"] == 287.5


def test_a_run_without_the_handler_length_block_reports_none() -> None:
    summary = _summary()
    assert summary["handler_length"] == {}
    assert "### The transport with a handler as long as the bidder's" not in markdown.e2e_section(
        _results(summary)
    )


def test_results_md_carries_the_handler_length_table() -> None:
    summary = summarize(_with_handler_length(), PLAN, HANDLER_PROFILE, HANDLER_SERVICES, RECALL)
    text = markdown.e2e_section(_results(summary))
    assert (
        "| echo working 1 of the bidder's path | 500 us | 1,000/s | 0.17x | 70 us | 900 us | 400 us |" in text
    )
    assert "(400 us, between the working echoes on either side)" in text and "**175 us unaccounted**" in text


def test_results_md_carries_the_targets_table_instead_of_the_goals_sentence() -> None:
    summary = _summary()
    text = markdown.e2e_section(_results(summary))
    assert "### Targets" in text and "Goals at" not in text
    for row in summary["targets"]:
        assert f"| {row['target']} | {row['goal']} | {row['today_text']} |" in text
    assert "### Spend state in Redis" in text and "### Recall of the match on user-like queries" in text
    assert "**= unaccounted** (server CPU - echo CPU - parts)" in text


def test_the_half_load_line_says_how_busy_the_bidder_was_there() -> None:
    text = markdown.e2e_section(_results(_summary()))
    # The fixture's half-load bidder: 300 us of CPU a request at 1,800/s.
    assert "The bidder's server was then busy 54 % of a core: 300 us of CPU a request at that rate." in text


def _with_first_windows() -> list[dict[str, Any]]:
    """The fixture's runs and each Redis-block worker's first window: half the rate with Redis."""
    return [
        *_runs(),
        _run("redis-warmup", "bidder", "unary", "closed", 3000, 90),
        _run("redis-warmup", "bidder-redis", "unary", "closed", 1500, 200),
    ]


def test_the_redis_target_reads_the_windows_after_each_workers_first() -> None:
    summary = summarize(_with_first_windows(), PLAN, PROFILE, SERVICES, RECALL)
    first = summary["redis"]["unary"]["first_window"]
    assert (summary["redis"]["unary"]["throughput_ratio"], first["throughput_ratio"]) == (0.9, 0.5)


def test_the_first_windows_with_redis_are_reported_beside_the_table() -> None:
    summary = summarize(_with_first_windows(), PLAN, PROFILE, SERVICES, RECALL)
    lines = markdown._redis_lines(summary["redis"], {"sweep_size": SIZE})
    assert any("1,500/s with Redis against 3,000/s in process (0.50x)" in line for line in lines)


def test_the_bidder_with_redis_is_started_with_its_url(tmp_path: Path) -> None:
    command = bidder_command(tmp_path, 1234, 1, tmp_path, redis_url="redis://127.0.0.1:6380/0")
    assert command[command.index("--redis-url") + 1] == "redis://127.0.0.1:6380/0"
    assert "--redis-url" not in bidder_command(tmp_path, 1234, 1, tmp_path)


def test_py_spy_stacks_fold_to_inclusive_and_self_shares() -> None:
    raw = "main (a.py:1);decide (p.py:10);match (m.py:3) 3\nmain (a.py:1);decide (p.py:12) 1\n"
    folded = fold(raw, cpu_us_per_request=800.0)
    inclusive = {row["function"]: row for row in folded["top_inclusive"]}
    own = {row["function"]: row for row in folded["top_self"]}
    assert (folded["samples"], inclusive["decide (p.py)"]["share"], own["decide (p.py)"]["share"]) == (
        4,
        1.0,
        0.25,
    )
    assert own["match (m.py)"]["us_per_request"] == 600.0


@pytest.fixture(scope="module")
def demo_recall(demo_dir: Path) -> dict[str, Any]:
    return user_recall(demo_dir, k=20, queries=40)


def test_user_recall_reports_the_indexs_type_and_its_builds_own_recall(
    demo_recall: dict[str, Any], demo_dir: Path
) -> None:
    manifest = load_index(demo_dir / "index").manifest
    assert (demo_recall["index_type"], demo_recall["index_params"]) == (
        manifest.index_type,
        manifest.index_params,
    )
    assert (demo_recall["build_recall"], demo_recall["build_query_source"]) == (
        manifest.recall.value,
        manifest.recall.source,
    )


def test_user_recall_is_a_share_of_the_exact_neighbours(demo_recall: dict[str, Any]) -> None:
    assert 0.0 <= demo_recall["recall"] <= 1.0
    assert (demo_recall["k"], demo_recall["queries"]) == (20, 40)


def test_user_like_queries_find_the_demo_peoples_profiles(demo_recall: dict[str, Any]) -> None:
    assert demo_recall["profiles_found"] > 0.5


def test_the_cache_misses_measured_in_process_are_a_part_of_the_accounting() -> None:
    means = dict(PROFILE["mean_us"])  # type: ignore[call-overload]
    profile = {**PROFILE, "mean_us": {**means, "servicer_call_cpu_cold": 490.0}}
    cost = summarize(_runs(), PLAN, profile, SERVICES, RECALL)["cost_per_request_us"]
    # 490 - 460 = 30 us more with the caches emptied; -475 (as above) - 30
    assert (cost["same_rate"]["cache_misses"], cost["unaccounted"]) == (30.0, -505.0)


def _with_path_cpu(block: str, service: str, rpc: str, path_cpu: float) -> list[dict[str, Any]]:
    """The fixture's runs, the one of `block`, `service` and `rpc` with the bidder's own count of its path."""
    return [
        {**run, "path_cpu_us_per_request": path_cpu}
        if (run["block"], run["service"], run["rpc"]) == (block, service, rpc)
        else run
        for run in _runs()
    ]


def test_the_running_servers_count_of_its_path_stands_for_the_path_at_the_same_rate() -> None:
    profile = {**PROFILE, "mean_us": {**PROFILE["mean_us"], "to_response": 5.0}}  # type: ignore[dict-item]
    runs = _with_path_cpu("half-load", "bidder", "unary", 250.0)
    cost = summarize(runs, PLAN, profile, SERVICES, RECALL)["cost_per_request_us"]
    # 300 (bidder) - 300 (echo) - (250 + 5: the counted path and the response's copy) - 20 (background)
    assert (cost["same_rate"]["in_server_path"], cost["unaccounted"]) == (255.0, -275.0)


def test_the_running_servers_count_of_its_path_stands_for_the_path_in_the_closed_loop() -> None:
    runs = _with_path_cpu("catalog", "bidder", "unary", 250.0)
    cost = summarize(runs, PLAN, PROFILE, SERVICES, RECALL)["cost_per_request_us"]
    # 300 - 300 - 250 - 10 (background at 3,600/s)
    assert (cost["in_server_path"], cost["residual"]) == (250.0, -260.0)


def test_the_http_doors_count_leaves_out_the_json_decoding_the_echo_does_too() -> None:
    profile = {**PROFILE, "mean_us": {**PROFILE["mean_us"], "decode_json": 20.0}}  # type: ignore[dict-item]
    runs = _with_path_cpu("catalog", "bidder", "http", 250.0)
    http = summarize(runs, PLAN, profile, SERVICES, RECALL)["cost_per_request_us"]["http"]
    # 300 (bidder) - 300 (the HTTP echo) - (250 - 20) - 45 (background: 36 ms/s at 800/s)
    assert (http["in_server_path"], http["residual"]) == (230.0, -275.0)
