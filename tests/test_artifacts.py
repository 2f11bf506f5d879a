"""Versioned artifacts: atomic versions, a CURRENT pointer, and refusal of anything corrupt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from personabid.artifact import CURRENT, MANIFEST, read_manifest, resolve, sha256_file, write_artifact
from personabid.errors import ArtifactError
from personabid.index.bundle import load_index


def write_text_artifact(root: Path, text: str) -> Path:
    def write(path: Path) -> None:
        path.write_text(text)

    return write_artifact(root, "test", 1, {"data.txt": write}, {"note": text})


def test_new_version_becomes_current(tmp_path: Path) -> None:
    first = write_text_artifact(tmp_path, "one")
    second = write_text_artifact(tmp_path, "two")
    assert first != second
    assert resolve(tmp_path) == second


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    version = write_text_artifact(tmp_path, "hello")
    manifest = read_manifest(version, "test", (1,))
    assert manifest["files"]["data.txt"]["sha256"] == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )


def test_failed_write_leaves_no_version_behind(tmp_path: Path) -> None:
    def broken(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    write_text_artifact(tmp_path, "good")
    with pytest.raises(OSError):
        write_artifact(tmp_path, "test", 1, {"data.txt": broken}, {})
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != CURRENT) == [resolve(tmp_path).name]


def test_changed_file_fails_its_checksum(tmp_path: Path) -> None:
    version = write_text_artifact(tmp_path, "original")
    (version / "data.txt").write_text("tampered")
    with pytest.raises(ArtifactError, match=r"data.txt: sha256"):
        read_manifest(version, "test", (1,))


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    version = write_text_artifact(tmp_path, "x")
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["format_version"] = 99
    (version / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format_version 99"):
        read_manifest(version, "test", (1,))


def copy_index(demo_dir: Path, tmp_path: Path) -> Path:
    source = resolve(demo_dir / "index")
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def test_truncated_index_file_is_refused(demo_dir: Path, tmp_path: Path) -> None:
    version = copy_index(demo_dir, tmp_path)
    data = (version / "personas.faiss").read_bytes()
    (version / "personas.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"personas\.faiss"):
        load_index(version)


def test_index_whose_dims_disagree_with_the_vocabulary_is_refused(demo_dir: Path, tmp_path: Path) -> None:
    version = copy_index(demo_dir, tmp_path)
    vocab = json.loads((version / "vocab.json").read_text())
    vocab["tags"].append("interest:extra")
    (version / "vocab.json").write_text(json.dumps(vocab))
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["files"]["vocab.json"]["sha256"] = sha256_file(version / "vocab.json")
    (version / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="dims"):
        load_index(version)


def test_index_round_trips_its_campaign_columns(demo_dir: Path) -> None:
    bundle = load_index(demo_dir / "index")
    assert len(bundle.campaigns) == bundle.manifest.campaigns
    assert bundle.index.ntotal == bundle.manifest.vectors >= len(bundle.campaigns)
    assert np.all(bundle.campaigns.max_bid >= bundle.campaigns.base_bid)
