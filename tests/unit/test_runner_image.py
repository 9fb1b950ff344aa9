"""The runner's own image: what goes into its build context, and what decides that it is rebuilt."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runner.errors import ImageError
from runner.images.build import _context_tar, context_digest, project_version
from runner.images.catalog import RUNNER_CONTEXT, all_images, runner_image

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository with the runner's inputs and the things beside them that must not count."""
    (tmp_path / "images").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.3"\n')
    (tmp_path / "runner" / "__pycache__").mkdir(parents=True)
    (tmp_path / "runner" / "cli.py").write_text("print('hello')\n")
    (tmp_path / "runner" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0compiled")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_cli.py").write_text("")
    (tmp_path / "README.md").write_text("docs\n")
    return tmp_path / "images"


def _names(images_dir: Path) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(_context_tar(runner_image("1.2.3"), images_dir))) as tar:
        return set(tar.getnames())


def test_the_context_is_the_package_its_metadata_and_the_dockerfile(checkout: Path) -> None:
    assert _names(checkout) - {"build-ca/.keep", "build-ca/ca-bundle.crt"} == {
        "Dockerfile",
        "pyproject.toml",
        "runner/cli.py",
    }


def test_only_the_runners_inputs_decide_a_rebuild(checkout: Path) -> None:
    spec = runner_image("1.2.3")
    first = context_digest(spec, checkout, "sha256:base")
    root = checkout.parent
    (root / "README.md").write_text("other docs\n")
    (root / "tests" / "test_cli.py").write_text("assert False\n")
    (root / "runner" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\0recompiled")
    assert context_digest(spec, checkout, "sha256:base") == first
    (root / "runner" / "cli.py").write_text("print('changed')\n")
    assert context_digest(spec, checkout, "sha256:base") != first


def test_an_incomplete_checkout_is_named(checkout: Path) -> None:
    (checkout.parent / "pyproject.toml").unlink()
    with pytest.raises(ImageError, match="incomplete") as raised:
        context_digest(runner_image("1.2.3"), checkout, "sha256:base")
    assert "pyproject.toml" in str(raised.value)


def test_tagged_with_the_project_version_or_latest(checkout: Path, tmp_path: Path) -> None:
    assert project_version(checkout) == "1.2.3"
    assert runner_image(project_version(checkout)).reference == "keystone-upgrade/runner:1.2.3"
    (checkout.parent / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["version"]\n')
    assert project_version(checkout) is None
    assert project_version(tmp_path / "nowhere" / "images") is None
    assert runner_image(None).reference == "keystone-upgrade/runner:latest"


def test_a_lab_cluster_does_not_build_it() -> None:
    assert all(spec.name != "runner" for spec in all_images())


def test_docker_build_by_hand_sends_the_same_context() -> None:
    """.dockerignore lets through exactly what the build code puts in the context (and build-ca/)."""
    lines = (REPOSITORY_ROOT / ".dockerignore").read_text().splitlines()
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert admitted == {*RUNNER_CONTEXT, "build-ca"}
    assert "*" in lines
    for name in RUNNER_CONTEXT:
        assert (REPOSITORY_ROOT / name).exists(), name
