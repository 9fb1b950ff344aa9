"""What decides whether an image is rebuilt, and where the CA bundle goes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runner.images.build import _context_tar, context_digest
from runner.images.catalog import ImageSpec


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    (tmp_path / "thing").mkdir()
    (tmp_path / "thing" / "Dockerfile").write_text("FROM base\n")
    return tmp_path


SPEC = ImageSpec(name="thing", directory="thing", tag="1", buildargs={"A": "1"}, needs_ca_bundle=True)


def test_digest_changes_with_files_arguments_and_base(images_dir: Path) -> None:
    first = context_digest(SPEC, images_dir, "sha256:base")
    assert context_digest(SPEC, images_dir, "sha256:base") == first
    assert context_digest(SPEC, images_dir, "sha256:other") != first
    other_args = ImageSpec(name="thing", directory="thing", tag="1", buildargs={"A": "2"})
    assert context_digest(other_args, images_dir, "sha256:base") != first
    (images_dir / "thing" / "Dockerfile").write_text("FROM base\nRUN true\n")
    assert context_digest(SPEC, images_dir, "sha256:base") != first


def test_the_ca_bundle_rides_in_the_context_only(
    images_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("PIP_CERT", str(bundle))
    before = context_digest(SPEC, images_dir, "sha256:base")
    with tarfile.open(fileobj=io.BytesIO(_context_tar(SPEC, images_dir))) as tar:
        names = set(tar.getnames())
        extracted = tar.extractfile("build-ca/ca-bundle.crt")
        assert extracted is not None
        assert extracted.read() == bundle.read_bytes()
    assert {"Dockerfile", "build-ca/.keep", "build-ca/ca-bundle.crt"} <= names
    bundle.write_text("another CA\n")
    assert context_digest(SPEC, images_dir, "sha256:base") == before


def test_images_without_pip_get_no_bundle(images_dir: Path) -> None:
    spec = ImageSpec(name="thing", directory="thing", tag="1")
    with tarfile.open(fileobj=io.BytesIO(_context_tar(spec, images_dir))) as tar:
        assert "build-ca/ca-bundle.crt" not in tar.getnames()
