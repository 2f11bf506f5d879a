"""Properties of the decision path over generated requests, in the core and through a real server.

Requests range over every field's valid values (floors from 0 to far above every max bid, 1 to 64
impressions offering banners of any size and formats, video, audio, native and deals, profiles dense or
sparse with weights up to float32's limits, currencies with and without a rate, seat, app and language
rules, test auctions, tmax) and just outside them: each rule of the validation is broken on its own. Whatever
comes in, the answer is a well-formed bid, a no-bid with a documented reason, or a refusal that names the
field; never an internal error, a crash or an error in the log. Hypothesis runs derandomized, so that CI
sees the same examples every time; the @examples keep the defects found so far.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from personabid import wire
from personabid.decision.currency import Currencies
from personabid.decision.pipeline import Decider, Decision, DecisionSettings
from personabid.decision.reasons import NoBid
from personabid.decision.snapshot import Snapshot
from personabid.errors import InvalidRequest
from personabid.index.campaigns import CampaignTable
from personabid.openrtb.request import BidRequest
from personabid.spend.control import SpendControl
from personabid.spend.store import MemoryStore
from personabid.v1 import bidder_pb2 as pb
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from tests.conftest import ThreadedServer
from tests.outcomes import DECIDED, check_decision, check_matched, check_refusal, check_response
from tests.request_cases import (
    AUDIO_MIMES,
    DEAL_IDS,
    DIMS,
    F32_MAX,
    F32_TINY,
    HIGH_FLOOR,
    SPOILABLE,
    VIDEO_MIMES,
    VOCAB,
    Case,
    cases,
    one_tag_case,
    positive32,
    sample_case,
    uniform_dense_case,
)

NOW = 1_800_000_000
SLOW_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
CORE = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=SLOW_CHECKS
)
# caplog is function scoped: each example clears it and reads only its own records.
SERVER = settings(
    CORE, max_examples=60, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture]
)
# Each rule of the validation on its own, twice: the simplest request that breaks it, and another.
ONE_RULE = settings(CORE, max_examples=2)
# The second decider rates EUR (floors in EUR are converted, bids made in EUR when cur asks for it); no
# decider rates XXX.
EUR = 1.08

# Defect: with the floor filter and the size filter both computed on the matched rows before either was
# applied, a floor that removed some candidates but not all broke the size mask (IndexError, INTERNAL).
FLOOR_DEFECT = [
    sample_case(0, floors=(2.0,)),
    sample_case(1, dense=True, floors=(1.0,)),
    sample_case(2, floors=(5.0,)),
    sample_case(3, floors=(0.1, 10.0, 2.5)),
    sample_case(4, floors=(HIGH_FLOOR,)),
]
# Defect: finite weights whose squares overflow float32 (one of 3.4e38, 226 of 1e20, float32's maximum)
# made the profile's norm infinite and the user "unmatched"; weights whose squares underflow made it zero.
WEIGHT_DEFECT = [
    one_tag_case(0, 3.4e38),
    uniform_dense_case(1, 1e20),
    uniform_dense_case(2, F32_MAX),
    one_tag_case(3, F32_MAX),
    one_tag_case(4, F32_TINY),
]


def with_examples(examples: list[Case]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for case in reversed(examples):
            test = example(case=case)(test)
        return test

    return decorate


@pytest.fixture(scope="module")
def snapshot(demo_dir: Path) -> Snapshot:
    loaded = Snapshot.load(demo_dir / "index", demo_dir / "model")
    assert loaded.dims == DIMS, "the cases are drawn for the demo vocabulary"
    table = loaded.bundle.campaigns
    assert table.max_bid.max() * 2 < HIGH_FLOOR, "the floors drawn must reach above every max bid"
    assert set(table.deals[1:].tolist()) <= set(DEAL_IDS), "the deals drawn must be the catalog's"
    mimes = {m.lower() for m in VIDEO_MIMES + AUDIO_MIMES}
    assert set(table.mimes[1:].tolist()) <= mimes, "the players drawn must play the catalog's creatives"
    return loaded


@pytest.fixture(scope="module")
def plain(snapshot: Snapshot) -> Decider:
    return Decider(snapshot, DecisionSettings(), clock=lambda: NOW)


@pytest.fixture(scope="module", params=["without spend control", "with spend control"])
def decider(request: pytest.FixtureRequest, snapshot: Snapshot) -> Decider:
    if request.param == "without spend control":
        return Decider(snapshot, DecisionSettings(), clock=lambda: NOW)
    spend = SpendControl(MemoryStore(), clock=lambda: NOW, rng=np.random.default_rng(0))
    currencies = Currencies({"USD": 1.0, "EUR": EUR})
    return Decider(snapshot, DecisionSettings(currencies=currencies), clock=lambda: NOW, spend=spend)


def decide(decider: Decider, case: Case) -> tuple[BidRequest, Decision | None]:
    """The core's answer, held to the rules every answer follows; None when the request was refused."""
    request = wire.to_auction(case.message)
    try:
        decision = decider.decide(request)
    except InvalidRequest as exc:
        check_refusal(str(exc), case.invalid)
        return request, None
    assert not case.invalid, f"decided a request that breaks {sorted(case.invalid)}"
    check_decision(decider.snapshot.bundle.campaigns, request, decision, decider.settings.currencies)
    return request, decision


# -- the decision core -------------------------------------------------------------------------------------


@CORE
@given(case=cases())
@with_examples(FLOOR_DEFECT)
def test_core_answers_every_request_with_a_bid_a_documented_no_bid_or_a_refusal_naming_its_field(
    decider: Decider, case: Case
) -> None:
    decide(decider, case)


@pytest.mark.parametrize("rule", SPOILABLE)
def test_core_refuses_a_request_that_breaks_one_rule_naming_that_rule(plain: Decider, rule: str) -> None:
    @ONE_RULE
    @given(case=cases(breaks=rule))
    def refused_naming_it(case: Case) -> None:
        with pytest.raises(InvalidRequest) as refused:
            plain.decide(wire.to_auction(case.message))
        check_refusal(str(refused.value), case.invalid)

    refused_naming_it()


@CORE
@given(case=cases(breaks="none"))
@with_examples(WEIGHT_DEFECT)
def test_core_matches_every_profile_with_a_weight_on_a_known_tag(decider: Decider, case: Case) -> None:
    request, decision = decide(decider, case)
    assert decision is not None
    check_matched(decider, request, decision)


def scaled_profile(case: Case, shape: str, weight: float) -> tuple[pb.BidRequest, pb.BidRequest]:
    """The same profile twice, at unit scale and at `weight`: for "sample" the user's own weights times the
    power of two that brings the heaviest nearest to `weight` (exact, so the direction is the same bits)."""
    unit, scaled = pb.BidRequest(), pb.BidRequest()
    unit.CopyFrom(case.message)
    unit.ClearField("tmax")  # a first call that compiles kernels must not run out of time
    scaled.CopyFrom(unit)
    dense = len(unit.user.tag_vector) > 0
    if shape == "sample":
        weights = np.array(
            unit.user.tag_vector if dense else [t.weight for t in unit.user.tags], dtype=np.float64
        )
        nonzero = np.abs(weights[weights != 0])
        # Exact scaling: the heaviest weight stays finite and the lightest stays a normal float32.
        highest = math.floor(math.log2(F32_MAX / nonzero.max()))
        lowest = math.ceil(math.log2(float(np.finfo(np.float32).tiny) / nonzero.min()))
        exponent = min(max(math.floor(math.log2(weight / nonzero.max())), lowest), highest)
        moved = np.ldexp(weights, exponent).astype(np.float32).tolist()
        if dense:
            del scaled.user.tag_vector[:]
            scaled.user.tag_vector.extend(moved)
        else:
            for tag, value in zip(scaled.user.tags, moved, strict=True):
                tag.weight = value
        return unit, scaled
    for message, value in ((unit, 1.0), (scaled, weight)):
        if dense:
            vector = np.array(message.user.tag_vector)
            del message.user.tag_vector[:]
            if shape == "one-tag":
                one_hot = np.zeros(DIMS)
                one_hot[int(np.argmax(vector))] = value
                message.user.tag_vector.extend(one_hot.tolist())
            else:
                message.user.tag_vector.extend([value] * DIMS)
        else:
            heaviest = max(message.user.tags, key=lambda t: t.weight).id
            del message.user.tags[:]
            for name in [heaviest] if shape == "one-tag" else VOCAB.tags:
                message.user.tags.add(id=name, weight=value)
    return unit, scaled


def outcome(decision: Decision) -> tuple[object, ...]:
    bids = [(b.imp_id, b.campaign_id, b.creative_id, b.price, b.pctr) for b in decision.bids]
    return decision.nbr, decision.detail, decision.candidates, bids


@CORE
@given(
    seed=st.integers(0, 2**32 - 1),
    dense=st.booleans(),
    shape=st.sampled_from(["sample", "one-tag", "uniform"]),
    weight=positive32,
)
@example(seed=0, dense=False, shape="one-tag", weight=3.4e38)
@example(seed=1, dense=True, shape="uniform", weight=1e20)
@example(seed=2, dense=True, shape="uniform", weight=F32_MAX)
@example(seed=3, dense=True, shape="sample", weight=F32_MAX)
@example(seed=4, dense=False, shape="sample", weight=F32_MAX)
@example(seed=5, dense=False, shape="one-tag", weight=F32_TINY)
def test_core_decision_depends_on_the_profiles_direction_not_its_scale(
    plain: Decider, seed: int, dense: bool, shape: str, weight: float
) -> None:
    unit, scaled = scaled_profile(sample_case(seed, dense=dense), shape, weight)
    expected = plain.decide(wire.to_auction(unit))
    assert outcome(plain.decide(wire.to_auction(scaled))) == outcome(expected)


# -- a real server -----------------------------------------------------------------------------------------


def served_table(server: ThreadedServer) -> CampaignTable:
    decider = server.server.decider
    assert decider is not None
    return decider.snapshot.bundle.campaigns


def call(stub: pb_grpc.BidderStub, message: pb.BidRequest) -> tuple[grpc.StatusCode, pb.BidResponse | str]:
    try:
        return grpc.StatusCode.OK, stub.Bid(message, timeout=10)
    except grpc.RpcError as failure:
        return failure.code(), failure.details() or ""


@SERVER
@given(case=cases())
@with_examples(FLOOR_DEFECT + WEIGHT_DEFECT)
def test_server_answers_every_request_with_a_bid_a_documented_no_bid_or_invalid_argument_naming_its_field(
    server: ThreadedServer, stub: pb_grpc.BidderStub, case: Case
) -> None:
    code, answer = call(stub, case.message)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert isinstance(answer, str)
        check_refusal(answer, case.invalid_at_the_door)
        return
    assert code == grpc.StatusCode.OK, f"{code.name}: {answer}"
    assert isinstance(answer, pb.BidResponse)
    assert not case.invalid_at_the_door, f"answered a request that breaks {sorted(case.invalid)}"
    check_response(served_table(server), case.message, answer)


@SERVER
@given(case=cases())
@with_examples(FLOOR_DEFECT + WEIGHT_DEFECT)
def test_stream_answers_every_request_with_a_bid_a_documented_no_bid_or_reason_2_naming_its_field(
    server: ThreadedServer, stub: pb_grpc.BidderStub, case: Case
) -> None:
    message = pb.BidRequest()
    message.CopyFrom(case.message)
    if message.id:
        message.id += "-stream"  # its own auction: the unary tests may have reserved budget under the id
    responses = list(stub.BidStream(iter([message]), timeout=10))
    assert len(responses) == 1
    response = responses[0]
    if response.nbr == NoBid.INVALID_REQUEST:
        check_refusal(response.nbr_detail, case.invalid_at_the_door)
        return
    assert response.nbr == 0 or response.nbr in DECIDED, f"nbr {response.nbr}: {response.nbr_detail}"
    assert not case.invalid_at_the_door, f"answered a request that breaks {sorted(case.invalid)}"
    check_response(served_table(server), message, response)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name} {r.levelname}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


@SERVER
@given(case=cases())
@with_examples(FLOOR_DEFECT + WEIGHT_DEFECT)
def test_server_logs_no_error_or_traceback_for_any_request(
    stub: pb_grpc.BidderStub, caplog: pytest.LogCaptureFixture, case: Case
) -> None:
    caplog.clear()
    code, answer = call(stub, case.message)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), f"{code.name}: {answer}"
    assert errors_logged(caplog) == []


# -- bytes that are not a BidRequest ------------------------------------------------------------------------


def undecodable(raw: bytes) -> bool:
    try:
        pb.BidRequest.FromString(raw)
    except DecodeError:
        return True
    return False


SAMPLE = sample_case(0, dense=True).message.SerializeToString()
# The longest prefix of the sample that is not a whole message: cut inside its last field.
CUT_SHORT = next(SAMPLE[:cut] for cut in range(len(SAMPLE) - 1, 0, -1) if undecodable(SAMPLE[:cut]))
payloads = st.one_of(
    st.binary(min_size=1, max_size=512),
    st.integers(1, len(SAMPLE) - 1).map(lambda cut: SAMPLE[:cut]),  # cut short inside a field
    st.binary(max_size=40).map(lambda b: b"\x0a" + bytes([len(b) + 1]) + b"\xff" + b),  # an id not UTF-8
    st.tuples(st.integers(1, 15), st.sampled_from([6, 7])).map(lambda f: bytes([f[0] << 3 | f[1]])),
).filter(undecodable)
BAD_PAYLOADS = [
    b"\x0f",
    b"\x0a\x02\xff\xfe",
    SAMPLE[: len(SAMPLE) // 2],
    b"\x12\x03\x0a\x01\xff",
    b"\xff" * 11,
]


@pytest.fixture(scope="module")
def raw_bid(channel: grpc.Channel) -> Callable[[bytes], tuple[grpc.StatusCode, str]]:
    """Bid with a payload of raw bytes, as a client that does not speak the API would send them."""
    method: grpc.UnaryUnaryMultiCallable[bytes, pb.BidResponse] = channel.unary_unary(
        "/personabid.v1.Bidder/Bid", request_serializer=None, response_deserializer=pb.BidResponse.FromString
    )

    def send(raw: bytes) -> tuple[grpc.StatusCode, str]:
        try:
            method(raw, timeout=10)
        except grpc.RpcError as failure:
            return failure.code(), failure.details() or ""
        return grpc.StatusCode.OK, ""

    return send


def test_bytes_that_are_not_a_bid_request_on_a_stream_get_reason_2_and_the_stream_goes_on(
    channel: grpc.Channel,
) -> None:
    stream: grpc.StreamStreamMultiCallable[bytes, pb.BidResponse] = channel.stream_stream(
        "/personabid.v1.Bidder/BidStream",
        request_serializer=None,
        response_deserializer=pb.BidResponse.FromString,
    )
    before, after = sample_case(5).message, sample_case(6).message
    sent = [before.SerializeToString(), BAD_PAYLOADS[0], after.SerializeToString()]
    responses = list(stream(iter(sent), timeout=10))
    assert [r.nbr == NoBid.INVALID_REQUEST for r in responses] == [False, True, False], responses
    assert responses[1].nbr_detail and "<class" not in responses[1].nbr_detail
    assert (responses[0].id, responses[2].id) == (before.id, after.id)


def invalid_answers(server: ThreadedServer) -> float:
    """Requests the server has counted as invalid, over every method and reason."""
    return sum(
        sample.value
        for metric in server.server.registry.collect()
        if metric.name == "personabid_bid_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == "invalid"
    )


def bad_payloads(count: int) -> Iterator[bytes]:
    for i in range(count):
        raw = BAD_PAYLOADS[i % len(BAD_PAYLOADS)]
        yield raw if i < len(BAD_PAYLOADS) else raw + bytes([i % 7])


@SERVER
@given(raw=payloads)
@example(raw=b"\x0f")  # wire type 7 does not exist
@example(raw=b"\x0a\x02\xff\xfe")  # an id that is not UTF-8
@example(raw=CUT_SHORT)  # a request cut short
def test_bytes_that_are_not_a_bid_request_are_invalid_argument_with_a_short_message(
    raw_bid: Callable[[bytes], tuple[grpc.StatusCode, str]], raw: bytes
) -> None:
    code, details = raw_bid(raw)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    assert details, "INVALID_ARGUMENT without a message"
    assert len(details) <= 200 and "<class" not in details and "Traceback" not in details, details


def test_bytes_that_are_not_a_bid_request_are_counted_as_invalid(
    server: ThreadedServer, raw_bid: Callable[[bytes], tuple[grpc.StatusCode, str]]
) -> None:
    payloads = list(bad_payloads(12))
    assert all(undecodable(raw) for raw in payloads)
    before = invalid_answers(server)
    for raw in payloads:
        raw_bid(raw)
    assert invalid_answers(server) - before == len(payloads)


def test_bytes_that_are_not_a_bid_request_log_no_error_or_traceback(
    raw_bid: Callable[[bytes], tuple[grpc.StatusCode, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    for raw in bad_payloads(12):
        raw_bid(raw)
    assert errors_logged(caplog) == []


def test_a_flood_of_bytes_that_are_not_a_bid_request_does_not_log_a_line_each(
    raw_bid: Callable[[bytes], tuple[grpc.StatusCode, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    count = 200
    for raw in bad_payloads(count):
        raw_bid(raw)
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) < count // 2, f"{len(logged)} log lines for {count} bad requests"
