"""The assignment of users to arms: a keyed hash, sticky, independent between experiments, the same in
every process, in the shares the file gives; requests without a usable user id by their auction."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency

from personabid.experiments.assign import arm_index, arm_of, assignment_key, labels, unit
from personabid.experiments.spec import Experiment, parse_experiment
from personabid.openrtb.request import BidRequest, Device, Imp, Regs, User

PSEUDONYMS = [hashlib.sha256(f"user-{i}".encode()).hexdigest()[:32] for i in range(30_000)]


def experiment(name: str, salt: str, shares: tuple[float, ...]) -> Experiment:
    arms = "".join(f'[[arms]]\nname = "arm{i}"\nshare = {share}\n' for i, share in enumerate(shares))
    return parse_experiment(f'name = "{name}"\nversion = 1\nsalt = "{salt}"\n{arms}', f"{name}.toml")


def test_the_point_is_the_first_eight_bytes_of_hmac_sha256_keyed_by_the_salt() -> None:
    digest = hmac.new(b"salt-of-the-test", b"some-pseudonym", "sha256").digest()
    assert unit("salt-of-the-test", "some-pseudonym") == int.from_bytes(digest[:8], "big") / 2**64


def test_the_arm_is_the_first_whose_cumulative_share_exceeds_the_point() -> None:
    split = experiment("split", "salt-of-the-split", (0.25, 0.25, 0.5))
    for pseudonym in PSEUDONYMS[:2000]:
        u = unit(split.salt, pseudonym)
        assert arm_index(split, pseudonym) == (0 if u < 0.25 else 1 if u < 0.5 else 2)


def test_a_user_stays_in_the_arm_they_were_given() -> None:
    first = experiment("sticky", "salt-sticky-1", (0.5, 0.5))
    again = experiment("sticky", "salt-sticky-1", (0.5, 0.5))  # read again, as after a restart
    arms = [arm_of(first, p).name for p in PSEUDONYMS[:1000]]
    assert [arm_of(again, p).name for p in PSEUDONYMS[:1000]] == arms
    assert [arm_of(first, p).name for p in PSEUDONYMS[:1000]] == arms


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.2, 0.3, 0.5), (0.9, 0.1), (0.01, 0.99)])
def test_arms_get_their_shares_within_binomial_tolerance(shares: tuple[float, ...]) -> None:
    split = experiment("shares", "salt-of-shares", shares)
    counts = Counter(arm_index(split, p) for p in PSEUDONYMS)
    for i, share in enumerate(shares):
        assert binomtest(counts[i], len(PSEUDONYMS), share).pvalue > 1e-4, (i, counts[i], share)


def test_a_zero_share_arm_gets_no_one() -> None:
    split = experiment("zero", "salt-of-zero", (0.0, 1.0))
    assert {arm_index(split, p) for p in PSEUDONYMS[:5000]} == {1}


def contingency(first: Experiment, second: Experiment) -> np.ndarray:
    table = np.zeros((len(first.arms), len(second.arms)), dtype=np.int64)
    for p in PSEUDONYMS:
        table[arm_index(first, p), arm_index(second, p)] += 1
    return table


def test_experiments_with_different_salts_assign_independently() -> None:
    table = contingency(
        experiment("one", "salt-one-2026", (0.5, 0.5)), experiment("two", "salt-two-2026", (0.2, 0.3, 0.5))
    )
    assert chi2_contingency(table).pvalue > 0.001


def test_the_independence_check_sees_a_shared_salt() -> None:
    """The check above can fail: two experiments under one salt put users in the same arms."""
    table = contingency(
        experiment("one", "salt-shared-2026", (0.5, 0.5)), experiment("two", "salt-shared-2026", (0.5, 0.5))
    )
    assert chi2_contingency(table).pvalue < 1e-100


ANOTHER_PROCESS = """
import json, sys
from personabid.experiments.assign import arm_index
from personabid.experiments.spec import parse_experiment
split = parse_experiment(sys.argv[1], "x.toml")
print(json.dumps([arm_index(split, p) for p in json.loads(sys.stdin.read())]))
"""


def test_another_process_assigns_the_same_arms() -> None:
    text = 'name = "x"\nversion = 1\nsalt = "salt-across-processes"\n'
    text += "".join(f'[[arms]]\nname = "a{i}"\nshare = {s}\n' for i, s in enumerate((0.1, 0.4, 0.5)))
    split = parse_experiment(text, "x.toml")
    pseudonyms = PSEUDONYMS[:3000]
    # A different hash seed, so that nothing of Python's per-process hashing could make them agree.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS, text],
        input=json.dumps(pseudonyms),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    assert json.loads(result.stdout) == [arm_index(split, p) for p in pseudonyms]


def request(**fields: object) -> BidRequest:
    return BidRequest(id="auction-7", imp=(Imp(id="1"),), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("auction", "key"),
    [
        (request(user=User(buyeruid="buyer-p", id="exchange-p")), "buyer-p"),
        (request(user=User(id="exchange-p")), "exchange-p"),
        (request(device=Device(ifa="device-p")), "device-p"),
        (request(), "auction:auction-7"),
        (request(user=User(buyeruid="buyer-p"), regs=Regs(coppa=1)), "auction:auction-7"),
        (request(user=User(buyeruid="buyer-p"), device=Device(dnt=1)), "auction:auction-7"),
    ],
)
def test_a_request_is_assigned_by_its_user_or_else_by_its_auction(auction: BidRequest, key: str) -> None:
    assert assignment_key(auction) == key


def test_labels_name_experiment_and_arm() -> None:
    first = experiment("alpha", "salt-alpha-01", (1.0, 0.0))
    second = experiment("beta", "salt-beta-001", (0.0, 1.0))
    assert labels((first, second), "someone") == ("alpha:arm0", "beta:arm1")
