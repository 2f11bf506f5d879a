#!/usr/bin/env bash
# Install personabid into a self-contained virtual environment: the container image's install steps,
# kept here so that tests/test_container_install.py runs them and they cannot drift from the code.
#
#   .docker/install.sh VENV [SRC]     (SRC defaults to the current directory, the repository root)
#   PYTHON=python3.11 .docker/install.sh /opt/personabid
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 VENV [SRC]" >&2
    exit 2
fi
venv=$1
src=$(cd "${2:-.}" && pwd)
python=${PYTHON:-python3}

if [ ! -f "$src/pyproject.toml" ] || [ ! -f "$src/proto/generate.py" ]; then
    echo "install.sh: $src is not the personabid repository root" >&2
    exit 2
fi

say() { echo "install.sh: $*"; }

say "creating $venv with $("$python" --version 2>&1)"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --quiet)

say "upgrading pip"
"${pip[@]}" install --upgrade pip

# The stubs are not in git, so they have to be generated before the package is built.
say "generating gRPC stubs"
"${pip[@]}" install grpcio-tools
"$venv/bin/python" "$src/proto/generate.py"

# setuptools builds in the source tree by default; its build/ directory keeps modules that were since
# deleted and would ship them in the wheel. Building in a scratch directory keeps every build fresh
# and leaves the tree, which may be a working copy, untouched.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf '[build]\nbuild_base = %s/build\n[egg_info]\negg_base = %s\n' "$scratch" "$scratch" >"$scratch/setup.cfg"

# Not editable: the environment must not need the source tree once installed.
say "installing personabid from $src"
DIST_EXTRA_CONFIG="$scratch/setup.cfg" "${pip[@]}" install "$src"

say "removing grpcio-tools"
"${pip[@]}" uninstall --yes grpcio-tools

say "installed $("$venv/bin/personabid" --version)"
