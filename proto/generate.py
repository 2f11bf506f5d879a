"""Generate the Python stubs for every .proto of the project into the packages that import them.

The one command for generated code (`make proto` calls it). Two trees of .proto files:

- proto/personabid/v1/: the public API, generated into server/v1/ (`personabid.v1`);
- benchmarks/harness/proto/: the benchmark's echo service, read as personabid/bench/*.proto (so that its
  stubs import each other as `personabid.bench...`) and generated into benchmarks/harness/
  (`personabid.bench`). It is no part of the public API.

protoc names output files after the import path (personabid/v1/..., personabid/bench/...), which is not
where those packages live in the repository, so the stubs are generated into a scratch directory and
copied to their package's folder. Never edit the output by hand.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
HARNESS_PROTOS = ROOT / "benchmarks" / "harness" / "proto"
HARNESS_IMPORT_PATH = "personabid/bench"
# Where the stubs of each import path go: the folder the editable install maps that package onto.
PACKAGE_DIRS = {
    "personabid/v1": ROOT / "server" / "v1",
    HARNESS_IMPORT_PATH: ROOT / "benchmarks" / "harness",
}


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    protos += sorted(f"{HARNESS_IMPORT_PATH}/{p.name}" for p in HARNESS_PROTOS.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{HARNESS_IMPORT_PATH}={HARNESS_PROTOS}",  # protoc's VIRTUAL=DISK form of an import path
            f"-I{include}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *protos,
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        for path in sorted(Path(scratch).rglob("*.py*")):
            relative = path.relative_to(scratch)
            package = PACKAGE_DIRS.get(relative.parent.as_posix())
            if package is None:
                print(f"protoc wrote {relative}, outside every known package", file=sys.stderr)
                return 1
            target = package / relative.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            print(f"generated {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
