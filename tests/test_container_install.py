"""The container image's recipe, run without a container engine: .docker/install.sh into a fresh
virtual environment, then the Dockerfile's own HEALTHCHECK against the service installed there."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from personabid.bench.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
INSTALL_SCRIPT = ".docker/install.sh"
INSTALL_TIMEOUT = 900
HEALTHY_TIMEOUT = 60


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def image_venv() -> str:
    """The directory the Dockerfile asks install.sh to create."""
    for keyword, arguments in instructions():
        words = shlex.split(arguments)
        if keyword == "RUN" and INSTALL_SCRIPT in words:
            return words[words.index(INSTALL_SCRIPT) + 1]
    raise AssertionError(f"the Dockerfile never runs {INSTALL_SCRIPT}")


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions():
        if keyword == "ENV":
            for word in shlex.split(arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def healthcheck_command() -> list[str]:
    for keyword, arguments in instructions():
        if keyword == "HEALTHCHECK":
            _, _, command = arguments.partition("CMD")
            return json.loads(command)
    raise AssertionError("the Dockerfile has no HEALTHCHECK")


def base_python() -> str:
    # A venv made from the test's own venv python would chain two environments; the image has none.
    return getattr(sys, "_base_executable", None) or shutil.which("python3.11") or "python3"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("image") / "personabid"
    result = subprocess.run(
        ["bash", INSTALL_SCRIPT, str(target)],
        cwd=ROOT,
        env={**os.environ, "PYTHON": base_python()},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert result.returncode == 0, f"{INSTALL_SCRIPT} failed:\n{result.stdout}\n{result.stderr}"
    return target


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`personabid serve` from the installed venv on a small world; yields its address, process and log."""
    world = tmp_path / "world"
    built = subprocess.run(
        [venv / "bin" / "personabid", "demo", "--out", world, "--campaigns", "500", "--impressions", "40000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"demo failed:\n{built.stdout}\n{built.stderr}"
    addr = f"127.0.0.1:{free_port()}"
    # The developer's own PERSONABID_* settings must not leak into the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONABID_")}
    env.update(
        PERSONABID_GRPC_ADDR=addr,
        PERSONABID_METRICS_ADDR=f"127.0.0.1:{free_port()}",
        PERSONABID_ADMIN_ADDR=f"127.0.0.1:{free_port()}",
        PERSONABID_DATA_DIR=str(world),
        NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [venv / "bin" / "personabid", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield addr, process, log
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_installed_package_does_not_need_the_source_tree(venv: Path) -> None:
    result = subprocess.run(
        [venv / "bin" / "python", "-c", "import personabid; print(personabid.__file__)"],
        cwd=venv,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert Path(result.stdout.strip()).is_relative_to(venv)


@pytest.mark.slow
def test_installed_service_passes_the_image_healthcheck(
    venv: Path, served: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    addr, process, log = served
    image_addr = "127.0.0.1:" + image_env()["PERSONABID_GRPC_ADDR"].rpartition(":")[2]
    image_command = healthcheck_command()
    assert image_addr in image_command, "the HEALTHCHECK does not probe the port the service listens on"
    command = [arg.replace(image_venv(), str(venv)).replace(image_addr, addr) for arg in image_command]

    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while True:
        assert process.poll() is None, f"the server exited with {process.returncode}:\n{log.read_text()}"
        check = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if check.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert check.returncode == 0, f"{check.stdout}{check.stderr}\nserver log:\n{log.read_text()}"


def test_image_command_serves_from_the_installed_venv() -> None:
    keyword, arguments = instructions()[-1]
    assert keyword == "CMD"
    assert json.loads(arguments) == [f"{image_venv()}/bin/personabid", "serve"]


def test_image_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in instructions() if keyword == "USER"]
    assert users, "the image would run as root"
    assert users[-1].partition(":")[0] not in {"root", "0"}
