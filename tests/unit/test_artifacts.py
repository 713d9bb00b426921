"""`ciclo fetch`: every outcome leaves either the verified artifact or nothing at DEST."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ciclo.serving.artifacts import FetchError, fetch

PAYLOAD = b"model bytes " * 100_000  # 1.2 MB: more than one chunk
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "model.joblib"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            self.path = self.path.removeprefix("/slow")
            time.sleep(3)
        super().do_GET()

    def do_HEAD(self) -> None:
        if self.path.startswith("/slow/"):
            self.path = self.path.removeprefix("/slow")
            time.sleep(3)
        super().do_HEAD()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(source: Path) -> Iterator[str]:
    def handler(*args: object, **kwargs: object) -> Handler:
        return Handler(*args, directory=str(source.parent), **kwargs)  # type: ignore[arg-type]

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_file_uri_is_copied_and_verified(source: Path, tmp_path: Path):
    dest = tmp_path / "models" / "model.sklearn"
    assert fetch(source.as_uri(), dest, DIGEST) == DIGEST
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["model.sklearn"]


def test_a_digest_mismatch_leaves_nothing_at_dest(source: Path, tmp_path: Path):
    dest = tmp_path / "models" / "model.sklearn"
    with pytest.raises(
        FetchError, match=f"sha256 mismatch for .*: expected {'0' * 64}, got {DIGEST}"
    ):
        fetch(source.as_uri(), dest, "0" * 64)
    assert leftovers(dest.parent) == []


def test_a_missing_object_is_one_clear_line(tmp_path: Path):
    with pytest.raises(FetchError) as caught:
        fetch((tmp_path / "absent.joblib").as_uri(), tmp_path / "out" / "m", DIGEST)
    assert str(caught.value).startswith("not found: file://") and "\n" not in str(caught.value)
    assert leftovers(tmp_path / "out") == []


def test_http_fetch(server: str, tmp_path: Path):
    dest = tmp_path / "m"
    assert fetch(f"{server}/model.joblib", dest, DIGEST) == DIGEST
    assert dest.read_bytes() == PAYLOAD


def test_http_404_is_not_found(server: str, tmp_path: Path):
    with pytest.raises(FetchError, match="not found: http://"):
        fetch(f"{server}/nope.joblib", tmp_path / "out" / "m", DIGEST)
    assert leftovers(tmp_path / "out") == []


def test_a_slow_server_times_out(server: str, tmp_path: Path):
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 0\.5 s"):
        fetch(f"{server}/slow/model.joblib", tmp_path / "out" / "m", DIGEST, timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert leftovers(tmp_path / "out") == []


def test_pvc_uri_reads_the_mounted_claim(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CICLO_PVC_ROOT", str(source.parent.parent))
    dest = tmp_path / "m"
    assert fetch(f"pvc://{source.parent.name}/model.joblib", dest, DIGEST) == DIGEST


def test_a_missing_backend_names_the_extra(tmp_path: Path):
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(FetchError, match=r"s3:// needs s3fs: pip install 'ciclo\[s3\]'"):
            fetch("s3://bucket/model.joblib", tmp_path / "m", DIGEST)
    else:
        pytest.fail("s3fs is installed in the dev environment; this test expects it absent")


def test_cli_exit_codes_and_one_line(source: Path, tmp_path: Path):
    def ciclo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ciclo.cli.main", "fetch", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = ciclo(source.as_uri(), str(tmp_path / "ok"), "--sha256", DIGEST)
    assert ok.returncode == 0 and (tmp_path / "ok").read_bytes() == PAYLOAD
    bad = ciclo(source.as_uri(), str(tmp_path / "bad"), "--sha256", "f" * 64)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("ciclo fetch: sha256 mismatch")
    assert not (tmp_path / "bad").exists()


def test_a_failed_fetch_writes_the_termination_message_only_where_the_kubelet_made_it(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from ciclo.cli import main

    # The kubelet's file, writable by any uid, in a directory the runtime's user cannot write.
    made = tmp_path / "dev" / "termination-log"
    made.parent.mkdir()
    made.touch()
    monkeypatch.setattr(main, "TERMINATION_LOG", made)
    assert main.main(["fetch", source.as_uri(), str(tmp_path / "m"), "--sha256", "f" * 64]) == 1
    assert made.read_text().startswith("ciclo fetch: sha256 mismatch")
    # Outside a pod there is no such file, and none is made.
    absent = tmp_path / "elsewhere" / "termination-log"
    absent.parent.mkdir()
    monkeypatch.setattr(main, "TERMINATION_LOG", absent)
    assert main.main(["fetch", source.as_uri(), str(tmp_path / "m"), "--sha256", "f" * 64]) == 1
    assert not absent.exists()
