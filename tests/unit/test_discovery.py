"""Kube.serves: API discovery, asked again once its answer is max_age old, or after a forget."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ciclo.kube.client import POD_MONITORS, PROMETHEUS_RULES, Json, Kube, NotFound


class FakeDiscovery(Kube):
    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.resources: list[str] | None = None
        self.asked: list[str] = []

    def request(self, method: str, path: str, body: Json | None = None, **_: Any) -> Json:
        self.asked.append(path)
        if self.resources is None:
            raise NotFound(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIResourceList", "resources": [{"name": r} for r in self.resources]}


def test_absent_group_is_not_served_and_the_answer_is_cached() -> None:
    kube = FakeDiscovery()
    assert not kube.serves(POD_MONITORS)
    kube.resources = ["podmonitors", "prometheusrules"]
    assert not kube.serves(PROMETHEUS_RULES)  # same group version: one question
    assert kube.asked == ["/apis/monitoring.coreos.com/v1"]
    kube.forget_discovery(POD_MONITORS)
    assert kube.serves(POD_MONITORS) and kube.serves(PROMETHEUS_RULES)
    assert len(kube.asked) == 2


def test_crds_installed_later_are_seen_once_the_answer_is_max_age_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    kube = FakeDiscovery()
    assert not kube.serves(POD_MONITORS, 30)
    kube.resources = ["podmonitors"]
    now[0] += 29
    assert not kube.serves(POD_MONITORS, 30)
    now[0] += 2
    assert kube.serves(POD_MONITORS, 30)
    assert not kube.serves(PROMETHEUS_RULES, 30)


class PlainResponse:
    """What kube-apiserver answers for a group it does not serve: text, not a Status."""

    status = 404
    data = b"404 page not found\n"

    def read(self) -> bytes:
        return self.data


class PlainClient:
    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[Any, ...]:
        return method, path, {}, None, None

    def call_api(self, *_: Any) -> PlainResponse:
        return PlainResponse()


def test_a_plain_text_404_from_the_api_server_is_not_served() -> None:
    kube = Kube(PlainClient())  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="404 page not found"):
        kube.request("GET", "/apis/monitoring.coreos.com/v1")
    assert not kube.serves(POD_MONITORS)
