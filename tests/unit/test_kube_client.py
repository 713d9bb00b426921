"""load_client: the API client keeps as many connections as the operator has threads."""

from __future__ import annotations

from pathlib import Path

import yaml

from ciclo.kube.client import CONNECTIONS, load_client


def test_the_client_keeps_enough_connections_for_every_thread(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    client = load_client(str(tmp_path / "kubeconfig"))
    assert client.configuration.host == "https://127.0.0.1:6443"
    assert client.rest_client.pool_manager.connection_pool_kw["maxsize"] == CONNECTIONS >= 48
