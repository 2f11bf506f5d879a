"""Versioned artifact directories, shared by the index and the model.

An artifact root holds one directory per version and a CURRENT file naming the one in force:

    root/
      CURRENT                      -> "20261123T154102Z-3fa9c1"
      20261123T154102Z-3fa9c1/
        manifest.json              kind, format version, version, created, files with sha256, ...
        ...

A version is written under a hidden temporary name and renamed into place, and CURRENT is replaced
atomically, so a reader never sees half of a version. Reading verifies every file's checksum.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from personabid.errors import ArtifactError

MANIFEST = "manifest.json"
CURRENT = "CURRENT"

# Writes one file of an artifact, given its full path.
FileWriter = Callable[[Path], None]


def new_version() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def version_time(version: str) -> float:
    """Unix time at which a version was created, read from its name (0.0 if it is not one of ours)."""
    try:
        stamp = dt.datetime.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return stamp.timestamp()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(
    root: Path,
    kind: str,
    format_version: int,
    files: dict[str, FileWriter],
    fields: dict[str, Any],
    make_current: bool = True,
) -> Path:
    """Write a new version of an artifact under `root` and return its directory.

    `files` maps file names to writers; `fields` goes into the manifest beside the standard fields.
    """
    root.mkdir(parents=True, exist_ok=True)
    version = new_version()
    scratch = root / f".tmp-{version}"
    scratch.mkdir()
    try:
        checksums = {}
        for name, write in files.items():
            write(scratch / name)
            checksums[name] = {
                "sha256": sha256_file(scratch / name),
                "bytes": (scratch / name).stat().st_size,
            }
        manifest = {
            "kind": kind,
            "format_version": format_version,
            "version": version,
            "build_id": version,  # a version is one build: its name identifies the build
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            **fields,
            "files": checksums,
        }
        write_atomic(scratch / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        final = root / version
        os.replace(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if make_current:
        set_current(root, version)
    return final


def set_current(root: Path, version: str) -> None:
    if not (root / version / MANIFEST).is_file():
        raise ArtifactError(f"{root / version}: not an artifact version (no {MANIFEST})")
    write_atomic(root / CURRENT, version + "\n")


def resolve(path: Path) -> Path:
    """The version directory that `path` names: itself if it is a version, else its CURRENT one."""
    if (path / MANIFEST).is_file():
        return path
    pointer = path / CURRENT
    if not pointer.is_file():
        raise ArtifactError(f"{path}: neither an artifact version ({MANIFEST}) nor a root ({CURRENT})")
    version = pointer.read_text().strip()
    target = path / version
    if not (target / MANIFEST).is_file():
        raise ArtifactError(f"{pointer} names version {version!r}, which has no {MANIFEST}")
    return target


def read_manifest(directory: Path, kind: str, supported_formats: tuple[int, ...]) -> dict[str, Any]:
    """Read and verify a version's manifest: kind, format version and every file's checksum."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory / MANIFEST}: unreadable manifest: {exc}") from exc
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{directory}: kind is {manifest.get('kind')!r}, expected {kind!r}")
    if manifest.get("format_version") not in supported_formats:
        raise ArtifactError(
            f"{directory}: format_version {manifest.get('format_version')!r} "
            f"is not one of {supported_formats}"
        )
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ArtifactError(f"{path}: sha256 {actual} does not match the manifest's {entry['sha256']}")
    return manifest


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one, never a part.

    The data goes to a hidden temporary file beside `path` (the same file system, so the rename is
    atomic), named uniquely so that two writers cannot mix their halves, then is renamed over `path`."""
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        if isinstance(data, bytes):
            scratch.write_bytes(data)
        else:
            scratch.write_text(data)
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
