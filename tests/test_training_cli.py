"""`personabid train` and `personabid evaluate`, as an operator runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from personabid.artifact import resolve
from personabid.cli import main
from personabid.errors import ArtifactError
from personabid.privacy import Pseudonymizer
from personabid.training.events import EventWriter, ImpressionEvent
from personabid.training.model import CtrModel
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
            ImpressionEvent(
                ts=1_763_856_000 + i * 10.0,
                user_id=f"user-{rng.integers(1000)}",
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
