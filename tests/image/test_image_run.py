"""The archive `make image` exported runs: its entrypoint as the chart's user, every extra.

buildah runs it from the archive, the file containerd imports, without a daemon.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ciclo.config import DEFAULT_IMAGE
from localcluster import image
from localcluster.buildah import Buildah
from localcluster.paths import Paths

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def container(paths: Paths) -> Iterator[tuple[Buildah, str]]:
    archive = image.archive_path(paths)
    assert archive.exists(), f"{archive} is missing: run `make image`"
    buildah = Buildah.in_cache(image.images_dir(paths))
    name = buildah.out("from", "--pull=never", f"docker-archive:{archive}")
    try:
        yield buildah, name
    finally:
        buildah.run("rm", name)
        buildah.unmount_all()


def run(container: tuple[Buildah, str], *command: str) -> str:
    buildah, name = container
    return buildah.out(
        "run", "--isolation", "chroot", "--user", "65532:65532", name, "--", *command
    )


def test_the_entrypoint_is_ciclo_as_the_charts_user(container: tuple[Buildah, str]) -> None:
    buildah, name = container
    config = json.loads(buildah.out("inspect", "--type", "container", name))["OCIv1"]["config"]
    assert config["Entrypoint"] == ["ciclo"]
    assert config["Cmd"] == ["run"]
    assert config["User"] == "65532:65532"
    assert run(container, "id", "-u") == "65532"
    help_text = run(container, "ciclo", "--help")
    assert "serve" in help_text and "run" in help_text


def test_the_virtualenv_serves_every_model_format(container: tuple[Buildah, str]) -> None:
    out = run(
        container,
        "python",
        "-c",
        "import sys, sklearn, xgboost, lightgbm, onnxruntime, s3fs, gcsfs, pyarrow, ciclo; "
        "print(sys.prefix)",
    )
    assert out == "/opt/ciclo"


def test_the_archive_holds_the_charts_image_name(paths: Paths) -> None:
    import tarfile

    with tarfile.open(image.archive_path(paths)) as tar:
        manifest = tar.extractfile("manifest.json")
        assert manifest is not None
        assert json.load(manifest)[0]["RepoTags"] == [DEFAULT_IMAGE]
