"""`personabid profiles show`, `forget` and `push`: access shows every tag held with its weight and the event
types it came from; erasure removes the user from Redis at once and from every later lookup, through the
suppression list; the raw id is never printed or logged."""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from personabid.errors import ArtifactError, ConfigError
from personabid.index.vocab import Vocabulary
from personabid.profiles.artifact import load_profiles
from personabid.profiles.redis_store import RedisProfiles
from personabid.profiles.rights import add_rights, event_types
from personabid.profiles.store import ProfileUnavailable, open_embedded
from personabid.profiles.suppression import Suppression
from tests.conftest import RedisServer
from tests.test_profile_store import KEY, OTHER_KEY, VOCAB, random_users, write_users

RAW = "alice.smith@example.com"  # distinctive enough that finding it in any output is no accident
KEY_TEXT = "profile-store-test-key-0123456789"  # KEY's key, as the key file holds it
PAGE_VIEW, PURCHASE, CLICK = 1 << 0, 1 << 3, 1 << 7
ALICE = {
    "interest:topic-3": (0.9, PAGE_VIEW | CLICK),
    "age:25-29": (0.5, 1 << 4),
    "interest:topic-7": (0.25, PURCHASE),
}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="personabid profiles")
    add_rights(parser.add_subparsers(dest="profiles_command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> Path:
    """A data directory as the server's: its key file, the embedded profiles of Alice and others."""
    monkeypatch.delenv("PERSONABID_PSEUDONYM_KEY", raising=False)
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "pseudonym.key").write_text(KEY_TEXT + "\n")
    write_users(directory / "profiles", {RAW: ALICE, **random_users(rng, 30)})
    return directory


def test_event_types_name_the_bits_of_the_kinds_mask() -> None:
    assert event_types(PAGE_VIEW | CLICK) == ["page_view", "click"]
    assert event_types(0) == []
    assert event_types(1 << 12) == ["kind 12"]


def test_show_lists_every_tag_its_weight_and_event_types_and_never_the_raw_id(
    data_dir: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert run(["show", RAW, "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"pseudonym {KEY(RAW)}"
    assert "suppressed: no" in out
    assert "embedded" in out and "3 tags" in out
    tags = [line.split() for line in lines if line.startswith("  ")]
    assert tags == [
        ["interest:topic-3", "0.9000", "page_view,", "click"],
        ["age:25-29", "0.5000", "declared"],
        ["interest:topic-7", "0.2500", "purchase"],
    ]
    assert RAW not in out
    assert all(RAW not in record.getMessage() for record in caplog.records)


def test_show_as_json_with_redis(
    data_dir: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    RedisProfiles(redis_server.url, VOCAB, timeout_seconds=0.5).push(load_profiles(data_dir / "profiles"))
    argv = ["show", RAW, "--data-dir", str(data_dir), "--redis-url", redis_server.url, "--json"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["pseudonym"] == KEY(RAW) and report["suppressed"] is False
    assert [s["source"] for s in report["sources"]] == ["embedded", "redis"]
    embedded, in_redis = report["sources"]
    assert embedded["tags"] == in_redis["tags"]
    assert {t["tag"]: (t["weight"], t["events"]) for t in embedded["tags"]} == {
        "interest:topic-3": (0.9, ["page_view", "click"]),
        "age:25-29": (0.5, ["declared"]),
        "interest:topic-7": (0.25, ["purchase"]),
    }
    assert RAW not in out


def test_show_of_someone_unknown_says_nothing_is_held(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["show", "somebody else", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "nothing held" in out and "somebody else" not in out


def test_the_id_may_come_from_standard_input(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(RAW + "\n"))
    assert run(["show", "-", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"pseudonym {KEY(RAW)}\n")


def test_forget_removes_the_user_from_redis_and_from_later_lookups(
    data_dir: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = data_dir / "profiles.suppressed"
    suppression = Suppression(listed)
    embedded = open_embedded(data_dir / "profiles", VOCAB, KEY, suppression)
    redis_store = RedisProfiles(redis_server.url, VOCAB, timeout_seconds=0.5, suppressed=suppression)
    redis_store.push(embedded.profiles)
    assert embedded.lookup(KEY(RAW)) is not None and redis_store.lookup(KEY(RAW)) is not None

    assert run(["forget", RAW, "--data-dir", str(data_dir), "--redis-url", redis_server.url]) == 0
    out = capsys.readouterr().out
    assert "added to the suppression list" in out and "profile deleted" in out
    assert "still holds the user" in out and RAW not in out
    assert listed.read_text() == KEY(RAW) + "\n"
    # Gone from Redis at once, whatever the list says.
    assert RedisProfiles(redis_server.url, VOCAB, timeout_seconds=0.5).held(KEY(RAW)) is None
    # The running stores, once their watch loop re-reads the list.
    assert suppression.refresh()
    assert embedded.lookup(KEY(RAW)) is None and redis_store.lookup(KEY(RAW)) is None
    # A later push leaves the user out.
    assert (
        run(
            ["push", str(data_dir / "profiles"), "--data-dir", str(data_dir), "--redis-url", redis_server.url]
        )
        == 0
    )
    assert "1 suppressed left out" in capsys.readouterr().out
    assert redis_store.held(KEY(RAW)) is None

    assert run(["forget", RAW, "--data-dir", str(data_dir), "--redis-url", redis_server.url]) == 0
    out = capsys.readouterr().out
    assert "already on the suppression list" in out and "held no profile" in out
    assert listed.read_text() == KEY(RAW) + "\n"

    assert run(["show", RAW, "--data-dir", str(data_dir)]) == 0
    assert "suppressed: yes" in capsys.readouterr().out


def test_forget_with_redis_down_still_suppresses_and_fails_loudly(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = RedisServer(tmp_path).start()
    url = server.url
    server.stop()
    with pytest.raises(ProfileUnavailable):
        run(["forget", RAW, "--data-dir", str(data_dir), "--redis-url", url])
    assert Suppression(data_dir / "profiles.suppressed").keys().size == 1
    assert "added to the suppression list" in capsys.readouterr().out


def test_forget_writes_the_list_named_by_suppression(data_dir: Path, tmp_path: Path) -> None:
    listed = tmp_path / "elsewhere" / "erased.txt"
    assert run(["forget", RAW, "--data-dir", str(data_dir), "--suppression", str(listed)]) == 0
    assert KEY(RAW) in Suppression(listed)
    assert not (data_dir / "profiles.suppressed").exists()


def test_no_key_no_answer(data_dir: Path) -> None:
    # A new key would make up pseudonyms nobody holds: the commands refuse rather than create one.
    (data_dir / "pseudonym.key").unlink()
    with pytest.raises(ConfigError, match="pseudonymisation key"):
        run(["show", RAW, "--data-dir", str(data_dir)])
    assert not (data_dir / "pseudonym.key").exists()


def test_profiles_built_with_another_key_are_refused(
    data_dir: Path, tmp_path: Path, redis_server: RedisServer, rng: np.random.Generator
) -> None:
    other = write_users(tmp_path / "other", random_users(rng, 5), pseudonymize=OTHER_KEY)
    with pytest.raises(ArtifactError, match="key_check"):
        run(["show", RAW, "--data-dir", str(data_dir), "--profiles", str(other)])
    with pytest.raises(ArtifactError, match="key_check"):
        run(["push", str(other), "--data-dir", str(data_dir), "--redis-url", redis_server.url])


def test_push_loads_the_artifact(
    data_dir: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["push", str(data_dir / "profiles"), "--data-dir", str(data_dir), "--redis-url", redis_server.url]
    assert run([*argv, "--batch", "7"]) == 0
    assert "pushed 31 users" in capsys.readouterr().out
    store = RedisProfiles(redis_server.url, Vocabulary(tuple(reversed(VOCAB.tags))), timeout_seconds=0.5)
    found = store.lookup(KEY(RAW))
    assert found is not None and len(found) == 3


def test_the_rights_commands_load_no_training_code() -> None:
    code = (
        "import json, sys\n"
        "import personabid.profiles.rights, personabid.profiles.redis_store\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('personabid.training'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
