"""Container images for the real node, made on this machine: no registry is dialled.

An image here is one uncompressed layer of static binaries, written by hand as an OCI
image layout in a tar archive, which `ctr images import` reads. The pause image's
binary is compiled from pause.c; the busybox image copies Debian's busybox-static.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PAUSE_IMAGE = "ciclo.local/pause:1"
BUSYBOX_IMAGE = "ciclo.local/busybox:1"
BUSYBOX = Path("/bin/busybox")
# The busybox applets a test or a user reaches for; each is a symlink to /bin/busybox.
APPLETS = (
    "sh",
    "sleep",
    "cat",
    "echo",
    "ls",
    "ip",
    "wget",
    "nc",
    "httpd",
    "ping",
    "hostname",
    "nslookup",
)


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def layer(files: dict[str, bytes], links: dict[str, str], tmp: bool = False) -> bytes:
    """A layer tar: executables at their paths, symlinks name -> target, and /tmp."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {str(Path(p).parent): 0o755 for p in [*files, *links]}
        dirs.pop(".", None)
        if tmp:
            dirs["tmp"] = 0o1777
        for d, mode in sorted(dirs.items()):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for path, data in sorted(files.items()):
            _add(tar, path, data, 0o755)
        for path, target in sorted(links.items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def oci_archive(name: str, layer_tar: bytes, cmd: list[str]) -> bytes:
    """An OCI image layout (one manifest, one layer) as a tar. The manifest is named by
    the annotation containerd reads, so an import creates exactly one image, `name`."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_desc = blob(layer_tar, "application/vnd.oci.image.layer.v1.tar")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    }
    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
        "layers": [layer_desc],
    }
    manifest_desc = blob(json.dumps(manifest).encode(), manifest_type)
    manifest_desc["annotations"] = {"io.containerd.image.name": name}
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add(tar, "index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            _add(tar, "blobs/sha256/" + digest.removeprefix("sha256:"), data)
    return buf.getvalue()


def pause_binary() -> bytes:
    source = Path(__file__).with_name("pause.c")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pause"
        subprocess.run(
            ["gcc", "-static", "-Os", "-s", "-o", str(out), str(source)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def pause_archive() -> bytes:
    return oci_archive(PAUSE_IMAGE, layer({"pause": pause_binary()}, {}), ["/pause"])


def busybox_archive() -> bytes:
    links = {f"bin/{a}": "busybox" for a in APPLETS}
    files = {"bin/busybox": BUSYBOX.read_bytes()}
    return oci_archive(BUSYBOX_IMAGE, layer(files, links, tmp=True), ["/bin/sh"])


def import_archive(ctr: list[str], archive: bytes) -> None:
    """`ctr` is the command prefix naming the socket and the k8s.io namespace."""
    subprocess.run([*ctr, "images", "import", "-"], input=archive, check=True, capture_output=True)
