"""`personabid index ...`: the offline index tools."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    del commands  # the index subcommands (build, inspect) are added here
