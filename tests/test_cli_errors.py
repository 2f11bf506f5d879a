"""Every command answers a missing or unreadable input with one line naming it and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from personabid.cli import main


def commands(tmp: Path, demo_dir: Path) -> dict[str, tuple[list[str], Path]]:
    """name -> (arguments, the input they name that does not exist)."""
    missing = tmp / "missing"
    return {
        "index build": (
            [
                "index",
                "build",
                "--catalog",
                str(missing / "c.jsonl"),
                "--out",
                str(tmp / "i"),
                "--vocab",
                "demo",
            ],
            missing / "c.jsonl",
        ),
        "index inspect": (["index", "inspect", str(missing / "v1")], missing / "v1"),
        "train": (
            ["train", "--data", str(missing / "t.csv"), "--format", "criteo", "--out", str(tmp / "m")],
            missing / "t.csv",
        ),
        "evaluate": (
            [
                "evaluate",
                "--model",
                str(demo_dir / "model"),
                "--data",
                str(missing / "e.csv"),
                "--format",
                "criteo",
            ],
            missing / "e.csv",
        ),
        "call": (["call", str(missing / "r.json")], missing / "r.json"),
        "serve --config": (["serve", "--config", str(missing / "s.toml")], missing / "s.toml"),
    }


NAMES = ["index build", "index inspect", "train", "evaluate", "call", "serve --config"]


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_input_file_is_one_line_naming_it(
    name: str, tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, missing = commands(tmp_path, demo_dir)[name]
    assert main(arguments) != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("personabid: ") and str(missing) in lines[0]
    assert "Traceback" not in err


def test_a_directory_given_as_an_input_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert err.strip() == f"personabid: {tmp_path}: Is a directory"
