"""`personabid train` and `personabid evaluate`, as an operator runs them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from personabid.artifact import resolve
from personabid.bidrecord import BidRecord
from personabid.cli import main
from personabid.ctr.model import CtrModel
from personabid.errors import ArtifactError
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventWriter
from tests.processes import personabid

METRICS = {
    "rows",
    "clicks",
    "auc",
    "auc_ci95",
    "log_loss",
    "actual_ctr",
    "predicted_ctr",
    "predicted_over_actual",
}


def event_log(path: Path, rows: int, seed: int) -> Path:
    """An event log whose clicks follow the similarity and the campaign."""
    rng = np.random.default_rng(seed)
    impressions = []
    for i in range(rows):
        campaign, match = int(rng.integers(0, 30)), float(np.float32(rng.uniform(0.3, 0.95)))
        p = 0.01 + 0.08 * (match > 0.7) + 0.04 * (campaign < 10)
        impressions.append(
            BidRecord(
                ts=1_763_856_000 + i * 10.0,
                user=f"user-{rng.integers(1000)}",
                campaign=f"cmp-{campaign:06d}",
                advertiser=f"advertiser-{campaign // 3:05d}",
                category=f"IAB{campaign % 5 + 1}",
                devicetype=int(rng.choice([2, 4, 5])),
                os=str(rng.choice(["ios", "android"])),
                country="USA",
                w=320,
                h=50,
                match=match,
                click=int(rng.random() < p),
            )
        )
    with EventWriter(path, Pseudonymizer(b"c" * 32)) as writer:
        writer.write(impressions)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(personabid(*args), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_every_training_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0
    assert f"usage: personabid {command}" in result.stdout and "--format" in result.stdout


def test_train_then_evaluate_an_event_log(tmp_path: Path) -> None:
    out = tmp_path / "model"
    trained = run(
        "train", "--data", str(event_log(tmp_path / "monday.jsonl", 8000, 1)), "--format", "events",
        "--model", "fm", "--out", str(out),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert set(summary["evaluation"]) >= METRICS and summary["split"]["order"] == "time"
    version = resolve(out)
    assert (version / "reliability.png").read_bytes().startswith(b"\x89PNG")
    assert (
        json.loads((version / "report.json").read_text())["evaluation"]["auc"] == summary["evaluation"]["auc"]
    )
    assert CtrModel.load(out).model_type == "fm"  # an event-log model is one the server can load

    predictions = tmp_path / "predictions.csv"
    evaluated = run(
        "evaluate", "--model", str(out), "--data", str(event_log(tmp_path / "tuesday.jsonl", 3000, 2)),
        "--format", "events", "--predictions", str(predictions),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert set(metrics) >= METRICS and metrics["rows"] == 3000 and metrics["auc"] > 0.6
    lines = predictions.read_text().splitlines()
    assert lines[0] == "line,click,pctr" and len(lines) == 3001


def test_train_reads_a_directory_of_the_servers_day_files_as_one_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = event_log(tmp_path / "whole.jsonl", 4000, 3).read_text().splitlines(keepends=True)
    days = tmp_path / "events"
    days.mkdir()
    (days / "events-2025-11-22.jsonl").write_text("".join(lines[:1500]))
    (days / "events-2025-11-23.jsonl").write_text("".join(lines[1500:]))
    code = main(["train", "--data", str(days), "--format", "events", "--out", str(tmp_path / "m")])
    assert (code, json.loads(capsys.readouterr().out)["rows"]) == (0, 4000)


def test_train_reads_the_day_files_a_glob_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for day, seed in (("2025-11-22", 4), ("2025-11-23", 5)):
        event_log(tmp_path / f"events-{day}.jsonl", 1000, seed)
    event_log(tmp_path / "elsewhere.jsonl", 500, 6)
    pattern = str(tmp_path / "events-*.jsonl")
    code = main(["train", "--data", pattern, "--format", "events", "--out", str(tmp_path / "m")])
    assert (code, json.loads(capsys.readouterr().out)["rows"]) == (0, 2000)


def test_train_fails_clearly_on_a_log_of_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(["0\t1\t2"] * 100) + "\n")
    code = main(["train", "--data", str(log), "--format", "events", "--out", str(tmp_path / "m")])
    assert code == 2
    assert "no readable rows (100 bad); line 1: not JSON" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_evaluate_refuses_a_log_whose_fields_the_model_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--data",
                str(event_log(tmp_path / "e.jsonl", 2000, 3)),
                "--format",
                "events",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    criteo = tmp_path / "day_0"
    criteo.write_text("\t".join(["0"] * 40) + "\n")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(criteo), "--format", "criteo"]) == 2
    assert "trained on serving features" in capsys.readouterr().err


def test_a_model_of_a_public_log_format_is_not_servable(tmp_path: Path) -> None:
    criteo = tmp_path / "day_0"
    rng = np.random.default_rng(0)
    criteo.write_text(
        "".join(f"{int(rng.random() < 0.2)}" + "\t1" * 13 + f"\t{i % 7:08x}" * 26 + "\n" for i in range(500))
    )
    assert main(["train", "--data", str(criteo), "--format", "criteo", "--out", str(tmp_path / "m")]) == 0
    with pytest.raises(ArtifactError, match="cannot compute"):
        CtrModel.load(tmp_path / "m")
    assert CtrModel.load(tmp_path / "m", servable=False).spec.schema == "criteo"


def evening_log(path: Path, rows: int, seed: int) -> Path:
    """An event log over three days whose clicks follow the local evening: 18-22 h UTC in the USA,
    8-12 h UTC in China; nothing else tells the rows apart."""
    rng = np.random.default_rng(seed)
    start = 1_763_856_000 + seed * 3 * 86_400
    impressions = []
    for i in range(rows):
        ts = start + i * (3 * 86_400 / rows)
        country = str(rng.choice(["USA", "CHN"]))
        hour = int(ts // 3600 % 24)
        evening = 18 <= hour < 22 if country == "USA" else 8 <= hour < 12
        impressions.append(
            BidRecord(
                ts=ts, user="", campaign="cmp-000001", advertiser="advertiser-00001", category="IAB1",
                devicetype=4, os="ios", country=country, w=320, h=50, match=0.8,
                click=int(rng.random() < (0.12 if evening else 0.02)),
            )
        )  # fmt: skip
    with EventWriter(path, Pseudonymizer(b"c" * 32)) as writer:
        writer.write(impressions)
    return path


def auc_without_and_with_cross(
    make_log: Callable[[Path, int, int], Path], cross: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, float]:
    """AUC on a later log of models trained on an earlier one, with the default spec ("plain", model in
    tmp_path/plain) and with `cross` added ("crossed", in tmp_path/crossed)."""
    train_log, later_log = make_log(tmp_path / "a.jsonl", 12_000, 1), make_log(tmp_path / "b.jsonl", 6_000, 2)
    auc = {}
    for name, extra in (("plain", []), ("crossed", ["--cross", cross])):
        out = tmp_path / name
        assert main(["train", "--data", str(train_log), "--format", "events", "--out", str(out), *extra]) == 0
        capsys.readouterr()
        assert main(["evaluate", "--model", str(out), "--data", str(later_log), "--format", "events"]) == 0
        auc[name] = json.loads(capsys.readouterr().out)["auc"]
    return auc


def test_a_cross_of_hour_and_country_learns_the_local_evening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auc = auc_without_and_with_cross(evening_log, "hour:country", tmp_path, capsys)
    spec = CtrModel.load(tmp_path / "crossed").spec
    assert "hour" in spec.fields and ("hour", "country") in spec.crosses
    assert auc["crossed"] > auc["plain"] + 0.1, auc


def test_a_field_option_adds_the_field_to_the_models_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    log = evening_log(tmp_path / "a.jsonl", 2_000, 1)
    assert (
        main(["train", "--data", str(log), "--format", "events", "--out", str(out), "--field", "weekday"])
        == 0
    )
    assert CtrModel.load(out).spec.fields[-1] == "weekday"


def affinity_log(path: Path, rows: int, seed: int) -> Path:
    """An event log whose clicks follow one thing: whether the user has the campaign's own interest tag
    (campaign k, tag interest:k) among its tags; similarity, device and the rest are alike for all."""
    rng = np.random.default_rng(seed)
    impressions = []
    for i in range(rows):
        campaign = int(rng.integers(10))
        tags = tuple(f"interest:{t}" for t in rng.choice(10, size=3, replace=False).tolist())
        impressions.append(
            BidRecord(
                ts=1_763_856_000 + i * 5.0, user="", campaign=f"cmp-{campaign}", advertiser="advertiser-1",
                category="IAB1", devicetype=4, os="ios", country="USA", w=320, h=50, match=0.8, tags=tags,
                click=int(rng.random() < (0.15 if f"interest:{campaign}" in tags else 0.02)),
            )
        )  # fmt: skip
    with EventWriter(path, Pseudonymizer(b"c" * 32)) as writer:
        writer.write(impressions)
    return path


def test_a_cross_of_user_tags_and_campaign_learns_interest_affinity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auc = auc_without_and_with_cross(affinity_log, "tags:campaign", tmp_path, capsys)
    assert ("tags", "campaign") in CtrModel.load(tmp_path / "crossed").spec.crosses
    assert auc["crossed"] > auc["plain"] + 0.1, auc
