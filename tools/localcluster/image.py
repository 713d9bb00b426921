"""`make image`: the Dockerfile built daemonlessly, for a node's containerd.

buildah builds it on a base made by debootstrap (no registry needed), under the chart's
default image name, so pods with `imagePullPolicy: IfNotPresent` find it. The result is a
docker-archive in $CICLO_CACHE/images, rebuilt only when an input changes, and imported into
the local cluster's containerd when that runs (`import_archive`, also for the node's start).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ciclo.config import DEFAULT_IMAGE
from localcluster import apt, imagebase
from localcluster.buildah import Buildah
from localcluster.paths import Paths

REPO = Path(__file__).resolve().parents[2]
# The machine's CA bundle, over the base's (both Debian) during the build's RUN steps only.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What the Dockerfile reads (.dockerignore lets only these into the context).
INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator")
# What .dockerignore keeps out of operator/ (an editable install writes the egg-info).
IGNORED = frozenset({"__pycache__", "ciclo.egg-info"})


def images_dir(paths: Paths) -> Path:
    return paths.cache / "images"


def archive_path(paths: Paths) -> Path:
    return images_dir(paths) / "ciclo.tar"


def containerd_socket(paths: Paths) -> Path:
    """Where the local cluster's node runs containerd."""
    return paths.state / "node" / "containerd.sock"


def input_files(repo: Path) -> Iterator[Path]:
    for name in INPUTS:
        path = repo / name
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not IGNORED.intersection(p.parts)
            )
        elif path.exists():
            yield path


def input_digest(repo: Path, base: imagebase.Base, tag: str = DEFAULT_IMAGE) -> str:
    """Changes exactly when what the build reads does: the context, the base and the tag."""
    h = hashlib.sha256(f"{tag}\n{base.digest()}\n".encode())
    for path in input_files(repo):
        h.update(f"{path.relative_to(repo)}\0{path.stat().st_mode & 0o111}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def trust_args() -> list[str]:
    """pip trusts what the machine trusts (a proxy's CA, say); the image keeps its own bundle."""
    if not HOST_CA_BUNDLE.exists():
        return []
    return [
        "--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
        "--build-arg", f"PIP_CERT={HOST_CA_BUNDLE}",
    ]  # fmt: skip


def build(paths: Paths, repo: Path = REPO, tag: str = DEFAULT_IMAGE) -> Path:
    """The image's archive, built when its inputs changed since the last build."""
    base = imagebase.Base.from_host()
    archive = archive_path(paths)
    stamp = archive.with_suffix(".sha256")
    digest = input_digest(repo, base, tag)
    if archive.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        print(f"[image] {tag} is up to date ({archive})", flush=True)
        return archive
    apt.ensure({"buildah": "buildah", "debootstrap": "debootstrap"})
    buildah = Buildah.in_cache(images_dir(paths))
    try:
        base_name = imagebase.ensure_imported(base, images_dir(paths), buildah)
        print(f"[image] buildah bud {tag} on {base_name} (pip installs every extra)", flush=True)
        start = time.monotonic()
        buildah.run(
            "bud", "--isolation", "chroot", "--pull=never", "--build-arg", f"BASE={base_name}",
            *trust_args(), "--tag", tag, "--file", str(repo / "Dockerfile"), str(repo),
        )  # fmt: skip
        print(f"[image] build took {time.monotonic() - start:.0f} s", flush=True)
        # The previous build's image, now untagged.
        buildah.run("rmi", "--prune")
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        buildah.run("push", "--quiet", tag, f"docker-archive:{partial}:{tag}")
        partial.rename(archive)
        stamp.write_text(digest + "\n")
    finally:
        buildah.unmount_all()
    size = archive.stat().st_size / 1e6
    print(f"[image] {tag}: {archive} ({size:.0f} MB)", flush=True)
    return archive


def ctr_binary(paths: Paths) -> str:
    """The node's ctr when it was built with the cluster's tools, else Debian's."""
    own = paths.bin / "ctr"
    if os.access(own, os.X_OK):
        return str(own)
    apt.ensure({"ctr": "containerd"})
    found = shutil.which("ctr")
    assert found is not None
    return found


def import_archive(archive: Path, socket: Path, ctr: str, name: str = DEFAULT_IMAGE) -> None:
    """Put the image into containerd's k8s.io namespace, where the kubelet's CRI looks.

    `--index-name` names the image; without it ctr also adds an `import-<date>` tag.
    Importing over an existing name loses the new index to containerd 1.6's garbage
    collector (`content digest ... not found`), so that name goes first, with the
    bare-digest names imports leave: the old image's layers are then collected, not kept.
    """
    base = [ctr, "--address", str(socket), "-n", "k8s.io", "images"]
    names = subprocess.run([*base, "ls", "-q"], capture_output=True, text=True).stdout.split()
    stale = [n for n in names if n == name or n.startswith("sha256:")]
    if stale:
        subprocess.run([*base, "rm", *stale], check=True, capture_output=True)
    subprocess.run([*base, "import", "--index-name", name, str(archive)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="localcluster.image", description=__doc__)
    parser.parse_args()
    paths = Paths.from_env()
    start = time.monotonic()
    archive = build(paths)
    socket = containerd_socket(paths)
    if socket.exists():
        import_archive(archive, socket, ctr_binary(paths))
        print(f"[image] imported into {socket}", flush=True)
    else:
        print(f"[image] not imported: no containerd at {socket} (cluster not up)", flush=True)
    print(f"[image] done in {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
