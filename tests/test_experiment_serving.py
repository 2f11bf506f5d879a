"""Experiments on a real server: put, changed, ended live through Admin and the directory's watch, each
request decided by its arms' variant, traffic counted per arm, bad files refused while the set in force
keeps serving."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import msgspec
import numpy as np
import pytest

from personabid import cli
from personabid.artifact import resolve, set_current
from personabid.client import sample_auction
from personabid.ctr.model import CtrModel
from personabid.experiments import EXAMPLES
from personabid.experiments.assign import arm_of
from personabid.experiments.registry import Routing
from personabid.experiments.spec import parse_experiment
from personabid.openrtb.request import BidRequest, User
from personabid.v1 import admin_pb2 as admin
from personabid.v1 import admin_pb2_grpc as admin_grpc
from personabid.v1 import bidder_pb2_grpc as pb_grpc
from personabid.wire import to_message
from personabid.world import World
from tests.conftest import ThreadedServer, server_settings
from tests.steady_load import steady_load

MULTIPLIER = """
name = "bid-multiplier"
version = 1
salt = "salt-of-the-multiplier"
[[arms]]
name = "control"
share = 0.5
[[arms]]
name = "double"
share = 0.5
bid_multiplier = 2.0
"""

STRATEGY = """
name = "model-vs-constant"
version = 1
salt = "salt-of-the-strategy"
[[arms]]
name = "model"
share = 0.5
[[arms]]
name = "constant"
share = 0.5
strategy = "constant"
"""


@pytest.fixture(scope="module")
def data(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo world's artifacts, with a second model version beside the CURRENT one."""
    root = tmp_path_factory.mktemp("experiments-world")
    for name in ("index", "model"):
        shutil.copytree(demo_dir / name, root / name)
    shutil.copy(demo_dir / "world.json", root / "world.json")
    return root


@pytest.fixture(scope="module")
def second_model(data: Path) -> str:
    """A model version that is not the CURRENT one (its weights shifted, so that it predicts otherwise)."""
    current = resolve(data / "model").name
    model = CtrModel.load(data / "model")
    version = CtrModel(
        spec=model.spec,
        weights=(model.weights * np.float32(0.5)).astype(np.float32),
        calibration=model.calibration,
        avg_ctr=model.avg_ctr,
        model_type=model.model_type,
        factors=model.factors,
    ).save(data / "model")
    set_current(data / "model", current)
    return version.name


@pytest.fixture(scope="module")
def served(data: Path, second_model: str) -> Iterator[ThreadedServer]:
    server = ThreadedServer(server_settings(data)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_experiment_left(served: ThreadedServer) -> Iterator[None]:
    yield
    stub = admin_stub(served)
    for experiment in stub.ListExperiments(admin.ListExperimentsRequest(), timeout=10).experiments:
        stub.EndExperiment(admin.EndExperimentRequest(name=experiment.name), timeout=60)
    for path in served.server.experiments.directory.glob("*.toml"):
        path.unlink()
    served.run(served.server.experiments.refresh())


def admin_stub(server: ThreadedServer) -> admin_grpc.AdminStub:
    return admin_grpc.AdminStub(grpc.insecure_channel(f"127.0.0.1:{server.server.admin_port}"))


def put(server: ThreadedServer, text: str) -> admin.Experiment:
    return admin_stub(server).PutExperiment(admin.PutExperimentRequest(toml=text), timeout=60)


def refused_changes(server: ThreadedServer) -> float:
    value = server.server.registry.get_sample_value(
        "personabid_artifact_reloads_total", {"artifact": "experiments", "outcome": "refused"}
    )
    return value or 0.0


def routing(server: ThreadedServer) -> Routing:
    serving = server.server.reloader.serving()
    assert isinstance(serving, Routing)
    return serving


def auction(world: World, seed: int, test: int = 1) -> BidRequest:
    """A demo-world request whose user is known by a pseudonym of their own; a test auction (test=1)
    is priced without budgets or pacing, so that two variants see the same candidates."""
    request = sample_auction(world, np.random.default_rng(seed))
    user = msgspec.structs.replace(request.user, buyeruid=f"pseudonym-{seed}")
    return msgspec.structs.replace(request, user=user, test=test, id=f"auction-{seed}")


def test_a_put_experiment_is_in_force_and_listed_without_its_salt(served: ThreadedServer) -> None:
    answer = put(served, MULTIPLIER)
    assert (answer.name, answer.version) == ("bid-multiplier", 1)
    listed = admin_stub(served).ListExperiments(admin.ListExperimentsRequest(), timeout=10).experiments
    assert [e.name for e in listed] == ["bid-multiplier"]
    arms = {a.name: (a.share, list(a.changes), a.bid_multiplier) for a in listed[0].arms}
    assert arms == {"control": (0.5, [], 0.0), "double": (0.5, ["bid_multiplier"], 2.0)}
    assert len(listed[0].salt_hash) == 12 and "salt" not in listed[0].salt_hash
    assert "salt-of-the-multiplier" not in str(listed[0])
    assert Path(listed[0].path) == served.server.experiments.directory / "bid-multiplier.toml"
    assert parse_experiment(Path(listed[0].path).read_text(), "x").version == 1


def test_the_double_arm_bids_exactly_twice_the_control_under_the_max_bid(
    served: ThreadedServer, world: World
) -> None:
    put(served, MULTIPLIER)
    deciders = routing(served).deciders
    control, double = deciders[(0,)], deciders[(1,)]
    compared = 0
    for seed in range(60):
        request = auction(world, seed)
        plain = control.decide(request)
        if not plain.bids:
            continue
        bid = plain.bids[0]
        table = plain.table
        assert table is not None
        if 2.0 * bid.price >= table.max_bid[bid.campaign_row]:
            continue
        doubled = double.decide(request).bids
        assert [(b.campaign_id, b.price) for b in doubled] == [(bid.campaign_id, 2.0 * bid.price)]
        compared += 1
    assert compared >= 5


def test_the_constant_arm_bids_each_campaigns_base_bid_whatever_the_pctr(
    served: ThreadedServer, world: World
) -> None:
    put(served, STRATEGY)
    constant = routing(served).deciders[(1,)]
    pctrs = set()
    for seed in range(40):
        decision = constant.decide(auction(world, seed))
        table = decision.table
        assert table is not None
        for bid in decision.bids:
            row = bid.campaign_row
            assert bid.price == min(table.base_bid[row], table.max_bid[row])
            pctrs.add(bid.pctr)
    assert len(pctrs) > 5


def test_a_request_is_decided_in_the_variant_of_its_users_arm(served: ThreadedServer, world: World) -> None:
    experiment = parse_experiment(MULTIPLIER, "x")
    put(served, MULTIPLIER)
    route = routing(served)
    arms: Counter[str] = Counter()
    for seed in range(40):
        request = auction(world, seed)
        arm = arm_of(experiment, request.user.buyeruid)
        decision = route.decide(request)
        variant = route.deciders[(experiment.arms.index(arm),)].decide(request)
        assert decision.arms == (f"bid-multiplier:{arm.name}",)
        assert [b.price for b in decision.bids] == [b.price for b in variant.bids]
        arms[arm.name] += 1
    assert set(arms) == {"control", "double"}


def test_bids_record_their_arms(served: ThreadedServer, world: World) -> None:
    put(served, MULTIPLIER)
    route = routing(served)
    decision = next(d for seed in range(200) if (d := route.decide(auction(world, seed, test=0))).bids)
    user = f"pseudonym-{decision.request_id.removeprefix('auction-')}"
    expected = served.server.experiments.arms_for_user(user)
    assert len(expected) == 1 and expected[0].startswith("bid-multiplier:")
    assert decision.arms == expected
    assert decision.bids[0].record is not None and decision.bids[0].record.arms == expected


def test_an_arm_naming_a_model_version_is_decided_by_that_model(
    served: ThreadedServer, world: World, data: Path, second_model: str
) -> None:
    current = resolve(data / "model").name
    put(
        served,
        STRATEGY.replace("model-vs-constant", "pinned-model")
        .replace("share = 0.5\n", "share = 0.0\n", 1)
        .replace("share = 0.5\n", "share = 1.0\n", 1)
        .replace('strategy = "constant"', f'model = "{second_model}"'),
    )
    route = routing(served)
    decision = next(d for seed in range(200) if (d := route.decide(auction(world, seed, test=0))).bids)
    assert decision.arms == ("pinned-model:constant",)
    assert decision.bids[0].record is not None and decision.bids[0].record.model == second_model
    base = served.server.reloader.decider
    assert base is not None and base.snapshot.model.version == current != second_model


def test_a_model_reload_rebuilds_the_variants_that_follow_the_current_version(
    served: ThreadedServer, data: Path, second_model: str
) -> None:
    put(served, MULTIPLIER)
    pinned = STRATEGY.replace("model-vs-constant", "pinned-model").replace(
        'strategy = "constant"', f'model = "{second_model}"'
    )
    put(served, pinned)
    first = resolve(data / "model").name
    newer = CtrModel.load(data / "model").save(data / "model").name
    try:
        admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
        versions = {
            picks: decider.snapshot.model.version for picks, decider in routing(served).deciders.items()
        }
    finally:
        set_current(data / "model", first)
        admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
    # Experiments sorted by name: bid-multiplier (control, double), then pinned-model (model, pinned).
    assert versions == {(0, 0): newer, (1, 0): newer, (0, 1): second_model, (1, 1): second_model}


def assignments(server: ThreadedServer, arm: str) -> float:
    value = server.server.registry.get_sample_value(
        "personabid_experiment_assignments_total", {"experiment": "bid-multiplier", "arm": arm}
    )
    return value or 0.0


def test_traffic_is_listed_per_arm(served: ThreadedServer, world: World) -> None:
    put(served, MULTIPLIER)
    experiment = parse_experiment(MULTIPLIER, "x")
    pseudonymize = served.server.pseudonym
    doubles_before = assignments(served, "double")
    expected: Counter[str] = Counter()
    bids: Counter[str] = Counter()
    with grpc.insecure_channel(served.addr) as channel:
        stub = pb_grpc.BidderStub(channel)
        for seed in range(40):
            request = auction(world, seed)
            raw = f"raw-user-{seed}"
            request = msgspec.structs.replace(request, user=User(buyeruid=raw, tags=request.user.tags))
            arm = arm_of(experiment, pseudonymize(raw)).name
            response = stub.Bid(to_message(request), timeout=5)
            expected[arm] += 1
            bids[arm] += sum(len(s.bid) for s in response.seatbid)
    listed = admin_stub(served).ListExperiments(admin.ListExperimentsRequest(), timeout=10).experiments[0]
    assert {a.name: (a.requests, a.bids) for a in listed.arms} == {
        arm: (expected[arm], bids[arm]) for arm in ("control", "double")
    }
    assert assignments(served, "double") - doubles_before == expected["double"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (MULTIPLIER.replace("share = 0.5\nbid", "share = 0.6\nbid"), "arms.share=[0.5, 0.6]"),
        (MULTIPLIER.replace("bid_multiplier = 2.0", "bid_multiplier = 0"), "arms[1].bid_multiplier=0"),
        (MULTIPLIER.replace("bid_multiplier = 2.0", 'model = "no-such-version"'), "arms[1].model="),
        ("name = ", "toml="),
    ],
)
def test_a_refused_put_is_invalid_argument_and_the_set_in_force_keeps_serving(
    served: ThreadedServer, world: World, text: str, named: str
) -> None:
    put(served, STRATEGY)
    refused_before = refused_changes(served)
    with pytest.raises(grpc.RpcError) as refused:
        put(served, text)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (refused.value.details() or "")
    listed = admin_stub(served).ListExperiments(admin.ListExperimentsRequest(), timeout=10).experiments
    assert [(e.name, e.version) for e in listed] == [("model-vs-constant", 1)]
    assert refused_changes(served) == refused_before + 1
    assert routing(served).decide(auction(world, 1)).arms[0].startswith("model-vs-constant:")


def test_a_changed_experiment_must_raise_its_version(served: ThreadedServer) -> None:
    put(served, MULTIPLIER)
    with pytest.raises(grpc.RpcError) as refused:
        put(served, MULTIPLIER.replace("bid_multiplier = 2.0", "bid_multiplier = 3.0"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version=1: a changed experiment must raise its version above 1" in (refused.value.details() or "")
    changed = put(served, MULTIPLIER.replace("version = 1", "version = 2").replace("= 2.0", "= 3.0"))
    assert changed.version == 2 and changed.arms[1].bid_multiplier == 3.0
    assert routing(served).deciders[(1,)].settings.bid_multiplier == 3.0


def test_two_experiments_on_one_knob_are_refused_naming_both(served: ThreadedServer) -> None:
    put(served, MULTIPLIER)
    with pytest.raises(grpc.RpcError) as refused:
        put(served, MULTIPLIER.replace('name = "bid-multiplier"', 'name = "triple"'))
    details = refused.value.details() or ""
    assert "'triple' changes bid_multiplier" in details and "'bid-multiplier'" in details


def test_experiments_on_different_knobs_run_together(served: ThreadedServer, world: World) -> None:
    put(served, MULTIPLIER)
    put(served, STRATEGY)
    decision = routing(served).decide(auction(world, 3))
    assert [arm.split(":")[0] for arm in decision.arms] == ["bid-multiplier", "model-vs-constant"]


def test_an_ended_experiment_stops_routing_and_loses_its_file(served: ThreadedServer, world: World) -> None:
    put(served, MULTIPLIER)
    path = served.server.experiments.directory / "bid-multiplier.toml"
    ended = admin_stub(served).EndExperiment(admin.EndExperimentRequest(name="bid-multiplier"), timeout=60)
    assert ended.name == "bid-multiplier" and not path.exists()
    assert served.server.reloader.serving() is served.server.reloader.decider
    assert served.server.reloader.decider is not None
    assert served.server.reloader.decider.decide(auction(world, 1)).arms == ()


def test_an_ended_experiment_keeps_its_file_in_the_archive_by_version(served: ThreadedServer) -> None:
    archive = served.server.experiments.directory / "ended"
    shutil.rmtree(archive, ignore_errors=True)
    put(served, MULTIPLIER)
    admin_stub(served).EndExperiment(admin.EndExperimentRequest(name="bid-multiplier"), timeout=60)
    assert (archive / "bid-multiplier-v1.toml").read_text() == MULTIPLIER


def test_a_replaced_version_is_archived_and_the_archive_is_never_put_in_force(served: ThreadedServer) -> None:
    directory = served.server.experiments.directory
    shutil.rmtree(directory / "ended", ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dropped.toml"
    path.write_text(MULTIPLIER)
    served.run(served.server.experiments.refresh())
    path.write_text(MULTIPLIER.replace("version = 1", "version = 2"))
    served.run(served.server.experiments.refresh())
    served.run(served.server.experiments.refresh())
    assert (directory / "ended" / "bid-multiplier-v1.toml").read_text() == MULTIPLIER
    assert [e.version for e in served.server.reloader.experiments] == [2]


def test_a_removed_file_is_archived_when_its_experiment_ends(served: ThreadedServer) -> None:
    directory = served.server.experiments.directory
    shutil.rmtree(directory / "ended", ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dropped.toml"
    path.write_text(STRATEGY)
    served.run(served.server.experiments.refresh())
    path.unlink()
    served.run(served.server.experiments.refresh())
    assert (directory / "ended" / "model-vs-constant-v1.toml").read_text() == STRATEGY


def test_ending_an_unknown_experiment_is_not_found(served: ThreadedServer) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        admin_stub(served).EndExperiment(admin.EndExperimentRequest(name="never-put"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_watch_starts_changes_and_ends_experiments_from_files(served: ThreadedServer) -> None:
    directory = served.server.experiments.directory
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dropped.toml"
    path.write_text(MULTIPLIER)
    served.run(served.server.experiments.refresh())
    assert [e.version for e in served.server.reloader.experiments] == [1]
    path.write_text(MULTIPLIER.replace("version = 1", "version = 2"))
    served.run(served.server.experiments.refresh())
    assert [e.version for e in served.server.reloader.experiments] == [2]
    path.unlink()
    served.run(served.server.experiments.refresh())
    assert served.server.reloader.experiments == ()


def test_a_bad_file_is_refused_logged_once_and_counted_once(
    served: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    directory = served.server.experiments.directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "good.toml").write_text(MULTIPLIER)
    served.run(served.server.experiments.refresh())
    refused_before = refused_changes(served)
    bad = directory / "good.toml"
    changed = MULTIPLIER.replace("version = 1", "version = 2")
    bad.write_text(changed.replace("share = 0.5\nbid", "share = 0.7\nbid"))
    with caplog.at_level(logging.ERROR, logger="personabid.experiments.registry"):
        for _ in range(3):
            served.run(served.server.experiments.refresh())
    errors = [r for r in caplog.records if r.name == "personabid.experiments.registry"]
    assert len(errors) == 1 and "arms.share=[0.5, 0.7]" in errors[0].getMessage()
    assert refused_changes(served) == refused_before + 1
    assert [(e.name, e.version) for e in served.server.reloader.experiments] == [("bid-multiplier", 1)]


def test_put_change_and_end_under_load_drop_no_call(served: ThreadedServer, world: World) -> None:
    requests = [to_message(auction(world, seed, test=0)) for seed in range(64)]
    stub = admin_stub(served)
    with steady_load(served.addr, requests) as load:
        load.every_worker_answered_again()
        put(served, MULTIPLIER)
        load.every_worker_answered_again()
        changed = MULTIPLIER.replace("version = 1", "version = 2")
        put(served, changed.replace("= 0.5\n", "= 0.25\n", 1).replace("= 0.5\n", "= 0.75\n", 1))
        load.every_worker_answered_again()
        listed = stub.ListExperiments(admin.ListExperimentsRequest(), timeout=10).experiments
        load.every_worker_answered_again()
        stub.EndExperiment(admin.EndExperimentRequest(name="bid-multiplier"), timeout=60)
        load.every_worker_answered_again()
    assert load.failures == []
    assert [(e.version, [a.share for a in e.arms]) for e in listed] == [(2, [0.25, 0.75])]
    assert sum(a.requests for a in listed[0].arms) > 0


def test_status_reports_the_servers_clock(served: ThreadedServer) -> None:
    status = admin_stub(served).GetStatus(admin.StatusRequest(), timeout=10)
    assert status.clock_speed == 1.0 and status.clock_unix > 1.7e9


def test_the_admin_command_puts_lists_and_ends_an_experiment(
    served: ThreadedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    addr = ["--addr", f"127.0.0.1:{served.server.admin_port}"]
    assert cli.main(["admin", "put-experiment", str(EXAMPLES / "bid-multiplier.toml"), *addr]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "bid-multiplier"
    assert cli.main(["admin", "experiments", *addr]) == 0
    listed = json.loads(capsys.readouterr().out)["experiments"]
    assert [(e["name"], [a["name"] for a in e["arms"]]) for e in listed] == [
        ("bid-multiplier", ["control", "double"])
    ]
    assert cli.main(["admin", "end-experiment", "bid-multiplier", *addr]) == 0
    capsys.readouterr()
    assert cli.main(["admin", "experiments", *addr]) == 0
    assert "experiments" not in json.loads(capsys.readouterr().out)


def test_the_servers_watch_puts_a_dropped_file_in_force(data: Path, tmp_path: Path) -> None:
    experiments = tmp_path / "experiments"
    server = ThreadedServer(server_settings(data, watch_seconds=0.05, experiments_path=experiments)).start()
    try:
        experiments.mkdir()
        (experiments / "dropped.toml").write_text(MULTIPLIER)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not server.server.reloader.experiments:
            time.sleep(0.05)  # polling for the watch's round, bounded: not a barrier
        assert [e.name for e in server.server.reloader.experiments] == ["bid-multiplier"]
    finally:
        server.stop()


def test_an_arm_naming_the_current_model_keeps_it_when_current_moves_on(
    served: ThreadedServer, data: Path
) -> None:
    first = resolve(data / "model").name
    put(
        served,
        STRATEGY.replace("model-vs-constant", "pinned-current").replace(
            'strategy = "constant"', f'model = "{first}"'
        ),
    )
    newer = CtrModel.load(data / "model").save(data / "model").name
    try:
        admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
        versions = {
            picks: decider.snapshot.model.version for picks, decider in routing(served).deciders.items()
        }
    finally:
        set_current(data / "model", first)
        admin_stub(served).ReloadModel(admin.ReloadRequest(), timeout=60)
    assert versions == {(0,): newer, (1,): first}
