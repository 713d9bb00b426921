"""Pure helpers of the process node."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.procnode import IpPool, expand, field_ref, hides

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
    "spec": {"nodeName": "n"},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$(A)", "1"),
        ("x-$(A)-$(B)", "x-1-two"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("plain", "plain"),
    ],
)
def test_expand_follows_kubernetes_rules(value, expected):
    assert expand(value, {"A": "1", "B": "two"}) == expected


def test_field_ref_reads_pod_fields():
    assert field_ref(POD, "status.podIP", "10.244.0.9") == "10.244.0.9"
    assert field_ref(POD, "metadata.namespace", "") == "ns"
    assert field_ref(POD, "metadata.labels['app']", "") == "x"
    with pytest.raises(ValueError, match="not supported"):
        field_ref(POD, "spec.unknown", "")


def test_ip_pool_keeps_an_ip_a_pod_already_has_and_never_gives_the_gateway():
    pool = IpPool()
    assert pool.take("10.244.0.7") == "10.244.0.7"
    assert pool.take(None) == "10.244.0.2"
    assert pool.take("10.244.0.7") == "10.244.0.3"  # taken: a fresh one
    pool.give("10.244.0.2")
    assert pool.take("10.100.0.1") == "10.244.0.2"  # a KWOK address: not ours


@pytest.mark.parametrize(
    ("mount_path", "hidden"),
    [
        ("/tmp", "/tmp/ci/.venv"),
        ("/tmp/", "/tmp/ci/.venv"),
        ("/tmp/ci/.venv", "/tmp/ci/.venv"),
        ("/var/run/x", None),
        ("/tmp/cix", None),
        ("/tmp/ci/.venv/lib/x", None),
    ],
)
def test_a_volume_may_not_hide_what_pods_run_from(mount_path, hidden):
    needed = [Path("/tmp/ci/.venv"), Path("/root/.cache/ciclo")]
    assert hides(mount_path, needed) == (Path(hidden) if hidden else None)
