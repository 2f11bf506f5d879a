"""A/B experiments in the serving process: the file format (spec.py), the assignment of users to arms
(assign.py), and the set in force with its routing of requests to their arms' Deciders (registry.py)."""

from pathlib import Path

# Example experiment files, shipped with the package: `personabid admin put-experiment` takes them.
EXAMPLES = Path(__file__).resolve().parent / "examples"
