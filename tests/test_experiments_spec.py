"""The experiment file: what it may say, and errors that name the file, the field and the value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from personabid.experiments import EXAMPLES
from personabid.experiments.registry import check_conflicts
from personabid.experiments.spec import ExperimentError, parse_experiment, read_experiment

VALID = """
name = "bid-multiplier"
version = 3
salt = "2f6b0c1e-bid-mult"
description = "1x against 2x"
control = "control"
[[arms]]
name = "control"
share = 0.5
[[arms]]
name = "double"
share = 0.5
bid_multiplier = 2.0
"""

ORTB = """
name = "ortb-test"
version = 1
salt = "ortb-salt-0001"
[[arms]]
name = "linear"
share = 0.3
[[arms]]
name = "ortb"
share = 0.7
strategy = "ortb"
model = "20261123T154102Z-3fa9c1"
[arms.strategy_params]
c = 5.0
lambda = 0.002
"""


def test_a_valid_file_reads_with_every_field() -> None:
    experiment = parse_experiment(VALID, "bid-multiplier.toml")
    assert (experiment.name, experiment.version, experiment.control) == ("bid-multiplier", 3, "control")
    assert [(a.name, a.share, a.bid_multiplier) for a in experiment.arms] == [
        ("control", 0.5, None),
        ("double", 0.5, 2.0),
    ]
    assert experiment.knobs == ("bid_multiplier",)


def test_strategy_params_and_pinned_versions_are_read() -> None:
    arm = parse_experiment(ORTB, "ortb.toml").arm("ortb")
    assert (arm.strategy, arm.strategy_params, arm.model) == (
        "ortb",
        (("c", 5.0), ("lambda", 0.002)),
        "20261123T154102Z-3fa9c1",
    )


def test_the_control_defaults_to_the_first_arm() -> None:
    assert parse_experiment(ORTB, "ortb.toml").control == "linear"


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [
        ('name = "bid-multiplier"', 'name = "Bid Multiplier"', "name", "'Bid Multiplier'"),
        ("version = 3", "version = 0", "version", "0"),
        ("version = 3", 'version = "3"', "version", "'3'"),
        ("version = 3", "version = true", "version", "True"),
        ('salt = "2f6b0c1e-bid-mult"', 'salt = "short"', "salt", "'<hidden>'"),
        ('control = "control"', 'control = "treatment"', "control", "'treatment'"),
        ("bid_multiplier = 2.0", "bid_multiplier = 0.0", "arms[1].bid_multiplier", "0.0"),
        ("bid_multiplier = 2.0", "bid_multiplier = -2", "arms[1].bid_multiplier", "-2"),
        ("bid_multiplier = 2.0", 'bid_multiplier = "2"', "arms[1].bid_multiplier", "'2'"),
        ("bid_multiplier = 2.0", 'strategy = "second-price"', "arms[1].strategy", "'second-price'"),
        ("bid_multiplier = 2.0", 'model = "../elsewhere"', "arms[1].model", "'../elsewhere'"),
        ("bid_multiplier = 2.0", 'index = ".hidden"', "arms[1].index", "'.hidden'"),
        ("bid_multiplier = 2.0", "bid_multipler = 2.0", "arms[1].bid_multipler", "2.0"),
        ('name = "double"', 'name = "control"', "arms[1].name", "'control'"),
        ('name = "double"', 'name = "dou:ble"', "arms[1].name", "'dou:ble'"),
        ("share = 0.5\nbid", "share = 0.6\nbid", "arms.share", "[0.5, 0.6]"),
        ("share = 0.5\nbid", "share = 1.5\nbid", "arms[1].share", "1.5"),
        ('description = "1x against 2x"', "owner = 3", "owner", "3"),
    ],
)
def test_a_bad_field_is_refused_naming_the_file_the_field_and_the_value(
    old: str, new: str, field: str, value: str
) -> None:
    assert old in VALID
    with pytest.raises(ExperimentError) as refused:
        parse_experiment(VALID.replace(old, new, 1), "experiments/bid-multiplier.toml")
    assert (refused.value.source, refused.value.field) == ("experiments/bid-multiplier.toml", field)
    assert str(refused.value).startswith(f"experiments/bid-multiplier.toml: {field}={value}: ")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("lambda = 0.002", "", "arms[1].strategy_params.lambda"),
        ("lambda = 0.002", "lambda = 0.0", "arms[1].strategy_params.lambda"),
        ("lambda = 0.002", "lambda = 0.002\nd = 1.0", "arms[1].strategy_params.d"),
        ('strategy = "ortb"', 'strategy = "constant"', "arms[1].strategy_params.c"),
    ],
)
def test_strategy_params_are_checked_against_the_strategy(old: str, new: str, field: str) -> None:
    with pytest.raises(ExperimentError) as refused:
        parse_experiment(ORTB.replace(old, new, 1), "ortb.toml")
    assert refused.value.field == field


def test_strategy_params_without_a_strategy_are_refused() -> None:
    text = VALID.replace("bid_multiplier = 2.0", "[arms.strategy_params]\nc = 1.0")
    with pytest.raises(ExperimentError, match=r"arms\[1\].strategy_params=\{'c': 1.0\}: given without"):
        parse_experiment(text, "x.toml")


def test_one_arm_is_not_an_experiment() -> None:
    text = VALID[: VALID.index('[[arms]]\nname = "double"')].replace("share = 0.5", "share = 1.0")
    with pytest.raises(ExperimentError, match=r"x\.toml: arms="):
        parse_experiment(text, "x.toml")


def test_text_that_is_not_toml_is_refused_naming_the_file() -> None:
    with pytest.raises(ExperimentError, match=r"^broken\.toml: toml="):
        parse_experiment("name = ", "broken.toml")


def test_the_salt_is_never_shown() -> None:
    experiment = parse_experiment(VALID, "x.toml")
    assert "2f6b0c1e" not in repr(experiment)
    with pytest.raises(ExperimentError) as refused:
        parse_experiment(VALID.replace('"2f6b0c1e-bid-mult"', '"2f6b0c1"'), "x.toml")
    assert "2f6b0c1" not in str(refused.value)


def test_shares_that_sum_to_one_within_rounding_are_accepted() -> None:
    thirds = VALID.replace("share = 0.5\n", "share = 0.3333333333\n", 1).replace(
        "share = 0.5\n", "share = 0.6666666667\n", 1
    )
    assert [a.share for a in parse_experiment(thirds, "x.toml").arms] == [0.3333333333, 0.6666666667]


def test_two_experiments_that_change_the_same_knob_are_refused_naming_both() -> None:
    first = parse_experiment(VALID, "a.toml")
    second = parse_experiment(VALID.replace("bid-multiplier", "another-multiplier", 1), "b.toml")
    with pytest.raises(ExperimentError) as refused:
        check_conflicts([first, second])
    message = str(refused.value)
    assert refused.value.source == "b.toml"
    assert "'another-multiplier' changes bid_multiplier" in message and "'bid-multiplier' (a.toml)" in message


def test_experiments_on_different_knobs_may_run_together() -> None:
    check_conflicts([parse_experiment(VALID, "a.toml"), parse_experiment(ORTB, "b.toml")])


def test_a_file_is_read_with_its_path_as_the_source(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(VALID.replace("version = 3", "version = -1"))
    with pytest.raises(ExperimentError, match=f"^{re.escape(str(path))}: version=-1: "):
        read_experiment(path)


@pytest.mark.parametrize("name", ["bid-multiplier.toml", "model-vs-constant.toml"])
def test_the_shipped_examples_are_valid(name: str) -> None:
    experiment = read_experiment(EXAMPLES / name)
    assert experiment.name == name.removesuffix(".toml")
    assert [a.share for a in experiment.arms] == [0.5, 0.5]
