"""What tests need to run pods on the real node: where they land, and their artifacts over
HTTP from the host (a container sees nothing of the host's disk, so file:// URIs fail)."""

from __future__ import annotations

import functools
import shutil
import socket
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localcluster import node

ON_REAL_NODE: dict[str, Any] = node.PLACEMENT


class FreeBindServer(ThreadingHTTPServer):
    """Binds the bridge's address even before the bridge exists (a module's fixture may
    start before the cluster's)."""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        super().server_bind()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ArtifactServer:
    """Serves a directory on the host's side of the real node's bridge, where pods reach it
    and nothing outside does."""

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root
        handler = functools.partial(QuietHandler, directory=str(root))
        self.server = FreeBindServer((node.HOST_ADDRESS, port), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def uri(self, relative: str) -> str:
        return f"http://{node.HOST_ADDRESS}:{self.port}/{relative}"

    def publish(self, path: Path) -> str:
        """A copy of `path` under a name of its own; its URI."""
        relative = f"{uuid.uuid4().hex[:12]}/{path.name}"
        (self.root / relative).parent.mkdir()
        shutil.copyfile(path, self.root / relative)
        return self.uri(relative)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
