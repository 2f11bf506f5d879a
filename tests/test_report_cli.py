"""`personabid report kpis`, run as a user runs it: the installed command, in a process of its own."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from personabid.artifact import resolve
from personabid.index.campaigns import CampaignTable
from tests.kpi_logs import DAY0, Log, demo_campaigns, random_log, write_days, write_lines

COMMAND = Path(sys.executable).with_name("personabid")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No configuration file of the machine's: the windows and the index are the defaults, or the flags'.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONABID_")}
    return subprocess.run(
        [str(COMMAND), "report", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_the_command_writes_json_csv_and_html(tmp_path: Path, demo_dir: Path) -> None:
    write_days(tmp_path / "log", demo_campaigns(random_log(5, 150, days=2.0), demo_dir / "index"))
    done = run(
        "kpis", "--events", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--index",
        str(demo_dir / "index"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    report = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert written == ["kpis.csv", "kpis.json", "report.html"] and report["totals"]["wins"] > 0


def test_the_csv_has_a_row_per_group_with_its_dimension(tmp_path: Path) -> None:
    write_days(tmp_path / "log", random_log(6, 80))
    done = run(
        "kpis", "--events", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--by", "campaign,arm",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "kpis.csv").open() as handle:
        dimensions = {r["dimension"] for r in csv.DictReader(handle)}
    assert dimensions == {"campaign", "arm", "all"}


def test_the_budget_comes_from_the_index(tmp_path: Path, demo_dir: Path) -> None:
    log = Log()
    bid = log.bid(DAY0 + 3_600, "c1")
    log.win(bid, 10_000.0)  # $10
    write_days(tmp_path / "log", demo_campaigns(log.lines, demo_dir / "index"))
    done = run(
        "kpis", "--events", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--by", "campaign",
        "--index", str(demo_dir / "index"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = CampaignTable.load(resolve(demo_dir / "index") / "campaigns.npz")
    rows = json.loads((tmp_path / "out" / "kpis.json").read_text())["groups"]["campaign"]
    assert [(r["group"], r["budget_used"]) for r in rows] == [
        (str(table.campaign_id[0]), pytest.approx(10.0 / float(table.daily_budget[0])))
    ]


def test_a_bad_dimension_is_named(tmp_path: Path) -> None:
    write_days(tmp_path / "log", random_log(6, 5))
    done = run(
        "kpis",
        "--events",
        str(tmp_path / "log"),
        "--out",
        str(tmp_path / "out"),
        "--by",
        "campaign,colour",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "'colour'" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_time_is_named(tmp_path: Path) -> None:
    write_days(tmp_path / "log", random_log(6, 5))
    done = run(
        "kpis",
        "--events",
        str(tmp_path / "log"),
        "--out",
        str(tmp_path / "out"),
        "--since",
        "yesterday",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "'yesterday'" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    done = run("kpis", "--events", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        2,
        f"personabid: --events {tmp_path / 'nowhere'}: no such file or directory",
    )


def test_a_directory_without_event_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    done = run("kpis", "--events", str(tmp_path / "log"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2 and "holds no event files" in done.stderr and "Traceback" not in done.stderr


def test_an_empty_log_is_a_clear_error(tmp_path: Path) -> None:
    write_lines(tmp_path / "events.jsonl", [])
    done = run(
        "kpis", "--events", str(tmp_path / "events.jsonl"), "--out", str(tmp_path / "out"), cwd=tmp_path
    )
    assert done.returncode == 2 and "no events" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_experiment_command_writes_its_report(tmp_path: Path) -> None:
    write_days(tmp_path / "log", random_log(9, 120))
    done = run(
        "experiment",
        "bidmult",
        "--events",
        str(tmp_path / "log"),
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "experiment.csv",
        "experiment.json",
        "report.html",
    ]


def test_the_experiment_command_finds_an_ended_experiments_file_through_the_configuration(
    tmp_path: Path,
) -> None:
    # The experiment ended: the server kept its file in the archive of the configured experiments path.
    ended = tmp_path / "experiments" / "ended"
    ended.mkdir(parents=True)
    (ended / "bidmult-v1.toml").write_text(
        'name = "bidmult"\nversion = 1\nsalt = "0123456789abcdef"\ncontrol = "double"\n'
        '[[arms]]\nname = "control"\nshare = 0.5\n[[arms]]\nname = "double"\nshare = 0.5\n'
    )
    config = tmp_path / "personabid.toml"
    config.write_text(f"experiments_path = {json.dumps(str(tmp_path / 'experiments'))}\n")
    write_days(tmp_path / "log", random_log(9, 120))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONABID_")}
    env["PERSONABID_CONFIG"] = str(config)
    done = subprocess.run(
        [str(COMMAND), "report", "experiment", "bidmult", "--events", str(tmp_path / "log"), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "experiment.json").read_text())["control"] == "double"
