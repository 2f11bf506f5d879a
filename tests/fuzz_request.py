"""Coverage-guided fuzzing (atheris, libFuzzer) of request decoding and validation, through the decision.

Every input is taken as the body of a Bid call: bytes -> the API's BidRequest -> the core's OpenRTB
BidRequest -> decide, on a small world, with and without spend control (the second also rating EUR). It
must end in one of three ways: the bytes are not a BidRequest (DecodeError, which the server answers
INVALID_ARGUMENT), the request is refused naming a field (InvalidRequest), or it is decided as every
answer must be (tests/outcomes.py: well-formed bids or a documented no-bid, and a profile with weight on a
known tag matched). Anything else, a warning included, is a crash: libFuzzer stops and writes the input to
`<artifact_prefix>crash-<sha1>`; run the harness with that file as its only argument to replay it.

    python -m tests.fuzz_request [--world DIR] [--corpus DIR] [libFuzzer flags, e.g. -max_total_time=300]

`make fuzz` runs it for FUZZ_SECONDS; tests/test_fuzz.py runs it briefly as part of the suite. The corpus
starts from serialized sample requests of the world (banner, video, native and deal impressions), written
into --corpus when it is empty.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

SMALL_WORLD = {"seed": 3, "campaigns": 300, "impressions": 60_000, "people": 500}
NOW = 1_800_000_000
SEED_FLOORS = ((0.1,), (1.0,), (2.0,), (5.0,), (0.0, 2.0, 40.0), (1e9,))
# The request path, which coverage guides the fuzzer through, and the modules with Numba kernels (and what
# they pull in), which Numba could not compile instrumented.
INSTRUMENTED = ("personabid.decision.pipeline", "personabid.wire", "tests.outcomes")
UNINSTRUMENTED = (
    "personabid.decision.creatives",
    "personabid.decision.eligibility",
    "personabid.decision.match",
    "personabid.index.sparse",
    "personabid.decision.pricing",
    "personabid.decision.uservec",
    "personabid.index.store",
    "personabid.spend.control",
    "personabid.ctr.features",
    "personabid.ctr.model",
)


def seed_corpus(world_dir: Path, corpus: Path, count: int = 24) -> int:
    """Write serialized sample requests into `corpus` unless it has inputs already; returns how many."""
    from personabid.client import sample_request
    from personabid.demo import read_world
    from personabid.v1 import bidder_pb2 as pb
    from personabid.world import DEALS

    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return 0
    world, rng = read_world(world_dir), np.random.default_rng(0)
    for i in range(count):
        request = sample_request(world, rng, dense=i % 2 == 1)
        request.id = f"seed-{i}"
        banner = request.imp[0].banner
        del request.imp[:]
        for j, floor in enumerate(SEED_FLOORS[i % len(SEED_FLOORS)]):
            imp = request.imp.add(id=str(j + 1), banner=banner, bidfloor=floor, bidfloorcur="USD")
            # Every medium and deals among the seeds, so that mutations start from each of them.
            if i % 4 == 1:
                imp.video.CopyFrom(
                    pb.Video(mimes=["video/mp4"], minduration=5, maxduration=30, protocols=[3, 7])
                )
            elif i % 4 == 2:
                imp.native.request = '{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}}]}'
            elif i % 4 == 3:
                imp.pmp.private_auction = j % 2
                imp.pmp.deals.add(id=DEALS[i % len(DEALS)], bidfloor=floor, bidfloorcur="USD", at=1 + i % 3)
                imp.pmp.deals.add(id="deal-nobody-buys", bidfloor=floor, bidfloorcur="EUR")
        (corpus / f"seed-{i:02d}").write_bytes(request.SerializeToString())
    return count


def harness(world_dir: Path) -> Callable[[bytes], None]:
    """The function libFuzzer calls with each input; raises on anything but the three allowed endings."""
    from google.protobuf.message import DecodeError

    from personabid import wire
    from personabid.decision.currency import Currencies
    from personabid.decision.pipeline import Decider, DecisionSettings
    from personabid.decision.snapshot import Snapshot
    from personabid.errors import InvalidRequest
    from personabid.spend.control import SpendControl
    from personabid.spend.store import MemoryStore
    from personabid.v1 import bidder_pb2 as pb
    from tests.outcomes import check_decision, check_matched, check_refusal

    snapshot = Snapshot.load(world_dir / "index", world_dir / "model")
    table = snapshot.bundle.campaigns
    plain = Decider(snapshot, DecisionSettings(), clock=lambda: NOW)

    def with_spend() -> Decider:
        # Fresh state for each input, so that a crash replays from its input alone.
        spend = SpendControl(MemoryStore(), clock=lambda: NOW, rng=np.random.default_rng(0))
        settings = DecisionSettings(currencies=Currencies({"USD": 1.0, "EUR": 1.08}))
        return Decider(snapshot, settings, clock=lambda: NOW, spend=spend)

    def one_input(data: bytes) -> None:
        try:
            message = pb.BidRequest.FromString(data)
        except DecodeError:
            return  # not a BidRequest: the server refuses it (tests/test_properties.py checks how)
        request = wire.to_auction(message)
        for decider in (plain, with_spend()):
            try:
                decision = decider.decide(request)
            except InvalidRequest as refused:
                check_refusal(str(refused))
                return
            check_decision(table, request, decision, decider.settings.currencies)
            check_matched(decider, request, decision)

    return one_input


def ensure_world(directory: Path) -> Path:
    """A built demo world in `directory`: the one found there, or a small one built now."""
    from personabid.demo import DemoSpec, build_demo, is_built

    if not is_built(directory):
        build_demo(directory, DemoSpec(**SMALL_WORLD))
    return directory


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--world", type=Path, default=Path("var/fuzz/world"), help="demo world (built if missing)"
    )
    parser.add_argument("--corpus", type=Path, default=None, help="corpus directory (seeded when empty)")
    options, libfuzzer = parser.parse_known_args(argv[1:])
    atheris = importlib.import_module("atheris")  # `pip install -e .[dev]` brings it; untyped

    # atheris instruments whole top-level packages, and only modules imported from here on.
    for name in UNINSTRUMENTED:
        importlib.import_module(name)
    with atheris.instrument_imports(include=["personabid", "tests"]):
        for name in INSTRUMENTED:
            importlib.import_module(name)
    world = ensure_world(options.world)
    if options.corpus is not None:
        seed_corpus(world, options.corpus)
        libfuzzer.append(str(options.corpus))
    one_input = harness(world)
    # A RuntimeWarning (an overflow, an invalid value) is a defect like an exception.
    warnings.simplefilter("error")
    atheris.Setup([argv[0], *libfuzzer], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
