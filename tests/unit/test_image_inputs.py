"""`make image`'s pure parts: what triggers a rebuild, and which name the image gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ciclo.config import DEFAULT_IMAGE
from localcluster import image, imagebase
from localcluster.paths import Paths

ROOT = Path(__file__).resolve().parents[2]
BASE = imagebase.Base()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A build context like the repository's: the Dockerfile, packaging files, a package."""
    root = tmp_path / "repo"
    (root / "operator/ciclo").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM ${BASE}\n")
    (root / ".dockerignore").write_text("*\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "README.md").write_text("ciclo\n")
    (root / "operator/ciclo/__init__.py").write_text("")
    return root


@pytest.mark.parametrize(
    "path", ["Dockerfile", "pyproject.toml", "README.md", "operator/ciclo/__init__.py"]
)
def test_an_input_changing_changes_the_digest(repo: Path, path: str) -> None:
    before = image.input_digest(repo, BASE)
    (repo / path).write_text((repo / path).read_text() + "# changed\n")
    assert image.input_digest(repo, BASE) != before


def test_a_new_module_changes_the_digest(repo: Path) -> None:
    before = image.input_digest(repo, BASE)
    (repo / "operator/ciclo/new.py").write_text("")
    assert image.input_digest(repo, BASE) != before


def test_what_the_build_does_not_read_leaves_the_digest(repo: Path, tmp_path: Path) -> None:
    before = image.input_digest(repo, BASE)
    (repo / "docs").mkdir()
    (repo / "docs/install.md").write_text("words\n")
    (repo / "operator/ciclo/__pycache__").mkdir()
    (repo / "operator/ciclo/__pycache__/x.pyc").write_bytes(b"\0")
    (repo / "operator/ciclo.egg-info").mkdir()
    (repo / "operator/ciclo.egg-info/PKG-INFO").write_text("Name: ciclo\n")
    assert image.input_digest(repo, BASE) == before
    # Nor does where the checkout is.
    moved = shutil.copytree(repo, tmp_path / "elsewhere")
    assert image.input_digest(moved, BASE) == before


def test_the_base_and_the_tag_are_inputs(repo: Path) -> None:
    before = image.input_digest(repo, BASE)
    assert image.input_digest(repo, imagebase.Base(mirror="http://mirror.example/debian")) != before
    assert image.input_digest(repo, BASE, tag="example/ciclo:dev") != before


def test_the_image_is_named_as_the_chart_names_it() -> None:
    values = yaml.safe_load((ROOT / "charts/ciclo/values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts/ciclo/Chart.yaml").read_text())
    assert image.DEFAULT_IMAGE == DEFAULT_IMAGE
    assert f"{values['image']['repository']}:{chart['appVersion']}" == image.DEFAULT_IMAGE


def test_an_up_to_date_archive_is_not_rebuilt(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths(cache=tmp_path / "cache", name="test")
    monkeypatch.setattr(imagebase.Base, "from_host", classmethod(lambda cls: BASE))
    archive = image.archive_path(paths)
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"an image")
    archive.with_suffix(".sha256").write_text(image.input_digest(repo, BASE) + "\n")

    def no_build(*_: object) -> None:
        raise AssertionError("rebuilt an up-to-date image")

    monkeypatch.setattr(image.apt, "ensure", no_build)
    assert image.build(paths, repo) == archive
    (repo / "README.md").write_text("changed\n")
    with pytest.raises(AssertionError, match="rebuilt"):
        image.build(paths, repo)


def test_the_mirror_is_the_hosts(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert imagebase.host_mirror(sources) == "http://mirror.example/debian"
    assert imagebase.host_mirror(tmp_path / "missing") == imagebase.DEFAULT_MIRROR
    assert (
        "URIs: http://mirror.example/debian-security"
        in imagebase.Base(mirror="http://mirror.example/debian").sources()
    )
