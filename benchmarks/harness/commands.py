"""`personabid bench`: the end-to-end benchmark suite, and the markdown of its figures."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from personabid.bench.worlds import DEFAULT_ROOT


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the bidder end to end against gRPC and HTTP echo floors",
        description="Run the bidder and echo services (the floors Python gRPC and Python HTTP set) in "
        "their own processes on 127.0.0.1, load them from others (closed and open loop; gRPC unary and "
        "streaming, and OpenRTB JSON over HTTP), and write results.json and PNG plots into --out. "
        "--plan smoke is a short version (under 2 minutes).",
    )
    bench.add_argument("--plan", choices=("full", "smoke"), default="full", help="default %(default)s")
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/e2e"),
        help="results directory (default %(default)s)",
    )
    bench.add_argument(
        "--worlds", type=Path, default=DEFAULT_ROOT, help="cache of built bench worlds (default %(default)s)"
    )
    bench.add_argument(
        "--sizes", help="catalog sizes, comma-separated, instead of the plan's (e.g. 10000,100000)"
    )
    bench.add_argument(
        "--micro", type=Path, help="pytest-benchmark JSON of the micro suite, for --update-results"
    )
    bench.add_argument(
        "--update-results",
        type=Path,
        metavar="RESULTS_MD",
        help="replace the End to end (and, with --micro, Micro) sections of this markdown file",
    )
    bench.add_argument(
        "--render", action="store_true", help="run nothing: print the markdown of --out's results.json"
    )
    bench.add_argument(
        "--py-spy",
        action="store_true",
        help="sample the bidder with py-spy during one more unary closed-loop run at the sweep size, and "
        "write its top functions (py_spy_top.txt) into --out",
    )
    bench.set_defaults(run=_bench)


def _bench(args: argparse.Namespace) -> int:
    import dataclasses

    from personabid.bench import markdown
    from personabid.bench.runner import PLANS, RESULTS_FILE, Plan, Suite, summarize

    logging.getLogger("personabid").setLevel(logging.INFO)
    if args.render:
        results = markdown.load(args.out / RESULTS_FILE)
        # The summary is derived from the runs: derive it again, so that a newer summary reads old runs.
        plan = Plan(**results["plan"])
        results["summary"] = summarize(
            results["runs"], plan, results["profile"], results["services"], results.get("recall")
        )
    else:
        plan = PLANS[args.plan]
        if args.sizes:
            sizes = tuple(int(s) for s in args.sizes.split(","))
            middle = sizes[len(sizes) // 2]
            plan = dataclasses.replace(plan, sizes=sizes, sweep_size=middle, workers_size=middle)
        args.out.mkdir(parents=True, exist_ok=True)
        results = Suite(plan, args.out, args.worlds, py_spy=args.py_spy).run()
    sections = [markdown.e2e_section(results)]
    if args.micro is not None:
        sections.append(markdown.micro_section(markdown.load(args.micro)))
    if args.update_results is not None:
        markdown.update_sections(args.update_results, sections)
    print("\n".join(sections))
    return 0
