"""The image's base made locally from Debian packages, for machines without a registry.

debootstrap builds a bookworm rootfs with Python (`python` and `venv` included, as the
Dockerfile expects); the rootfs is cached as a tarball and imported into buildah's storage.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from localcluster import apt
from localcluster.buildah import Buildah

HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Base:
    """What the base is made of: its hash names the cached rootfs."""

    suite: str = "bookworm"
    mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
    name: str = "localhost/ciclo-base:bookworm"

    @classmethod
    def from_host(cls) -> Base:
        """The same Debian mirror the machine's apt uses."""
        return cls(mirror=host_mirror(HOST_SOURCES))

    def digest(self) -> str:
        text = "\n".join([self.suite, self.mirror, *self.packages, self.name, SOURCES_TEMPLATE])
        return hashlib.sha256(text.encode()).hexdigest()

    def sources(self) -> str:
        """The apt sources the image keeps: the suite, its updates and its security archive."""
        return SOURCES_TEMPLATE.format(suite=self.suite, mirror=self.mirror)


SOURCES_TEMPLATE = """\
Types: deb
URIs: {mirror}
Suites: {suite} {suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {mirror}-security
Suites: {suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def host_mirror(sources: Path) -> str:
    """The first Debian archive URI in a deb822 sources file, else deb.debian.org."""
    if sources.exists():
        for m in re.finditer(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE):
            uri = m.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def rootfs(base: Base, cache: Path) -> Path:
    """The base's rootfs as a tarball, made by debootstrap the first time (a few minutes)."""
    tar = cache / f"base-{base.suite}-{base.digest()[:12]}.tar"
    if tar.exists():
        return tar
    apt.ensure({"debootstrap": "debootstrap"})
    print(f"[image] debootstrap {base.suite} base (once; ~3 min)", flush=True)
    start = time.monotonic()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="debootstrap-") as tmp:
        target = Path(tmp) / "rootfs"
        try:
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(base.packages)}",
                    base.suite,
                    str(target),
                    base.mirror,
                ],
                check=True,
            )
        finally:
            unmount_under(target)
        (target / "etc/apt/sources.list").unlink(missing_ok=True)
        (target / "etc/apt/sources.list.d/debian.sources").write_text(base.sources())
        for cached in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log"):
            for p in (target / cached).glob("*"):
                if p.is_file():
                    p.unlink()
        partial = Path(tmp) / "rootfs.tar"
        # /dev, /proc and /sys come from the container runtime.
        subprocess.run(
            ["tar", "-C", str(target), "--numeric-owner", "--exclude=./dev/*",
             "--exclude=./proc/*", "--exclude=./sys/*", "-cf", str(partial), "."],
            check=True,
        )  # fmt: skip
        for old in cache.glob(f"base-{base.suite}-*.tar"):
            old.unlink()
        partial.rename(tar)
    print(f"[image] debootstrap took {time.monotonic() - start:.0f} s", flush=True)
    return tar


def unmount_under(target: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; a failed run may leave them."""
    prefix = str(target.resolve())
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def ensure_imported(base: Base, cache: Path, buildah: Buildah) -> str:
    """The base image's name in buildah's storage, imported from the rootfs when missing."""
    if buildah.has_image(base.name):
        return base.name
    tar = rootfs(base, cache)
    print(f"[image] importing {tar.name} as {base.name}", flush=True)
    container = buildah.out("from", "scratch")
    try:
        buildah.run("add", "--quiet", container, str(tar), "/")
        buildah.run("config", "--env", "LANG=C.UTF-8", "--cmd", "python3", container)
        buildah.run("commit", "--quiet", container, base.name)
    finally:
        buildah.run("rm", container)
    return base.name
