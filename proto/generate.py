"""Generate the Python stubs for every .proto under proto/ into server/ (the `personabid` package).

The one command for generated code (`make proto` calls it). protoc names output files after the
proto package (personabid/v1/...), and the `personabid` package lives in server/, so the stubs are
generated into a scratch directory and moved into server/v1/. Never edit the output by hand.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_ROOT = ROOT / "server"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *protos,
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        generated = Path(scratch) / "personabid"
        for path in sorted(generated.rglob("*.py*")):
            target = PACKAGE_ROOT / path.relative_to(generated)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            print(f"generated {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
