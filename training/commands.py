"""`personabid train` and `personabid evaluate`: the offline CTR tools."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    del commands  # the training subcommands (train, evaluate) are added here
