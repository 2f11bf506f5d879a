"""`python -m personabid.bench.probe`: see the package's docstring."""

from personabid.bench.probe.cli import main

raise SystemExit(main())
