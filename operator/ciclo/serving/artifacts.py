"""Fetching a model artifact and checking its digest: the serving pod's init step.

Every scheme goes through fsspec: file://, http(s):// (aiohttp, which kopf
already brings), s3:// and gs:// (the s3fs and gcsfs extras), and pvc://CLAIM/path,
a PersistentVolumeClaim mounted at $CICLO_PVC_ROOT/CLAIM (default ciclo.pvc.ROOT, /mnt/pvc:
where the operator mounts it).

The file is streamed into a temporary name beside DEST while it is hashed and
renamed into place only when the digest matches, so DEST is either the whole,
verified artifact or absent.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec

from ciclo import pvc

CHUNK = 1 << 20
# The scheme, the package fsspec needs for it, and the extra that installs it.
EXTRAS = {"s3": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs")}


# Called after each chunk with the bytes copied so far and the size, when the source knows it.
Progress = Callable[[int, "int | None"], None]


class FetchError(Exception):
    """The artifact could not be had, or was not the one registered. str() is one line."""


def resolve(uri: str) -> tuple[str, dict[str, Any]]:
    """The fsspec URL and storage options for a ModelVersion URI."""
    on_claim = pvc.split(uri)
    if on_claim is not None:
        claim, path = on_claim
        if not claim or not path:
            raise FetchError(f"{uri}: a pvc:// URI is pvc://CLAIM/PATH")
        root = Path(os.environ.get("CICLO_PVC_ROOT", pvc.ROOT))
        return (root / claim / path).as_uri(), {}
    scheme = uri.partition("://")[0]
    if scheme in EXTRAS:
        module, extra = EXTRAS[scheme]
        try:
            __import__(module)
        except ImportError:
            raise FetchError(f"{scheme}:// needs {module}: pip install 'ciclo[{extra}]'") from None
    return uri, {}


def fetch(
    uri: str,
    dest: Path,
    sha256: str | None,
    *,
    timeout: float = 300.0,
    progress: Progress | None = None,
) -> str:
    """Copy `uri` to `dest`, checking `sha256` when given; return the digest."""
    url, options = resolve(uri)
    if url.startswith(("http://", "https://")):
        import aiohttp

        options["client_kwargs"] = {
            "timeout": aiohttp.ClientTimeout(total=timeout, sock_read=timeout)
        }
    deadline = time.monotonic() + timeout
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(url, "rb", **options) as source:
            size = getattr(source, "size", None)
            total = size if isinstance(size, int) else None
            done = 0
            while chunk := source.read(CHUNK):
                if time.monotonic() > deadline:
                    raise TimeoutError
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise FetchError(f"sha256 mismatch for {uri}: expected {sha256}, got {got}")
        Path(partial).replace(dest)
        return got
    except FetchError:
        raise
    except FileNotFoundError as e:
        # fsspec's HTTP backend reports any failure of its first request as not found,
        # with the real cause chained: a timeout must not read as a missing object.
        if isinstance(e.__cause__, TimeoutError):
            raise FetchError(f"timed out after {timeout:g} s fetching {uri}") from None
        raise FetchError(f"not found: {uri}") from None
    except TimeoutError:
        raise FetchError(f"timed out after {timeout:g} s fetching {uri}") from None
    except OSError as e:
        raise FetchError(f"cannot fetch {uri}: {e.strerror or e}") from None
    except Exception as e:  # fsspec backends raise their own kinds; the pod log needs one line
        name = type(e).__name__
        if "Timeout" in name:
            raise FetchError(f"timed out after {timeout:g} s fetching {uri}") from None
        message = str(e).splitlines()[0] if str(e) else name
        raise FetchError(f"cannot fetch {uri}: {message}") from None
    finally:
        Path(partial).unlink(missing_ok=True)
