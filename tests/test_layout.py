"""The import boundary between serving and the offline tools.

Serving never imports training or the index build: a server that loaded them would pay their start-up
time and memory, and a change to a trainer could break the bidder. What both sides use (CTR features, the
model reader, the index reader) belongs to the service, and the offline tools import it from there. Each
check runs in a fresh interpreter, since this one has imported everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from personabid import cli

TRAINING = "personabid.training"
INDEX_BUILD = (
    "personabid.index.build",
    "personabid.index.catalog",
    "personabid.index.commands",
    "personabid.index.lookalike",
    "personabid.index.store",
)
SERVE_HELP = (
    "import contextlib, io\n"
    "from personabid.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    main(['serve', '--help'])\n"
)
# What a serving process runs before it serves: the application, or the command line of `personabid serve`.
SERVING = {"app": "import personabid.app\n", "serve-help": SERVE_HELP}


def loaded_modules(code: str) -> set[str]:
    """The personabid modules in sys.modules after `code` runs in a fresh interpreter."""
    report = "import json, sys\nprint(json.dumps([m for m in sys.modules if m.startswith('personabid')]))\n"
    result = subprocess.run(
        [sys.executable, "-c", code + report], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("entry", sorted(SERVING))
def test_serving_loads_no_training_module(entry: str) -> None:
    modules = loaded_modules(SERVING[entry])
    assert sorted(m for m in modules if m == TRAINING or m.startswith(f"{TRAINING}.")) == []


@pytest.mark.parametrize("entry", sorted(SERVING))
def test_serving_loads_no_index_build_module(entry: str) -> None:
    assert sorted(m for m in loaded_modules(SERVING[entry]) if m in INDEX_BUILD) == []


def test_the_app_reads_the_index_and_the_model_from_the_service_package() -> None:
    modules = loaded_modules("import personabid.app\n")
    assert {"personabid.index.bundle", "personabid.ctr.model", "personabid.ctr.features"} <= modules


def test_training_imports_the_model_and_its_features_from_the_service() -> None:
    modules = loaded_modules("import personabid.training.train\n")
    assert {"personabid.ctr.model", "personabid.ctr.features"} <= modules


def test_the_index_build_imports_feature_tokens_from_the_service() -> None:
    modules = loaded_modules("import personabid.index.store, personabid.index.catalog\n")
    assert "personabid.ctr.features" in modules


def subcommands(argv: list[str]) -> set[str]:
    """The commands the parser for `argv` registers."""
    parser = cli._parser(argv)
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def test_every_offline_command_is_registered_through_tools() -> None:
    # A command a tool registers but TOOLS leaves out would be listed by --help yet refused when named.
    assert subcommands([]) - subcommands(["serve"]) == set(cli.TOOLS)


@pytest.mark.parametrize("command", sorted(cli.TOOLS))
def test_naming_an_offline_command_registers_it(command: str) -> None:
    assert command in subcommands([command])


def test_the_core_loads_no_transport() -> None:
    code = (
        "import sys\n"
        "import personabid.decision.pipeline, personabid.openrtb.codec, personabid.openrtb.validation\n"
        "transports = ('grpc', 'google.protobuf', 'uvicorn', 'httptools', 'prometheus_client')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in transports or m == 'google.protobuf'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
