"""Property: nothing a client sends makes `ciclo serve` answer 5xx, drop the connection,
stop answering, or grow its metric series. Random and mutated Open Inference Protocol
v2 requests and feedback go to a real server over HTTP (one keep-alive connection, so a
dropped one is an error here); derandomized, with a fixed number of examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.test_server import MODEL, X, matrix_input, serving
from tests.unit.test_server_input import Series, series

from ciclo.drift.profile import build_profile
from ciclo.serving.protocol import DTYPES

FUZZ = settings(
    max_examples=600,  # about 10 s a test on the project's machine
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,  # nothing written to the work tree
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATHS = [
    "/v2/models/iris/infer",
    "/v2/models/iris/versions/v1/infer",
    "/v2/models/iris/feedback",
    "/v2/models/iris/versions/v1/feedback",
    "/v2/models/iris",
    "/v2/models/iris/ready",
    "/v2/models/iris/versions/v2/infer",
    "/v2/models/rose/infer",
    "/v2/health/live",
    "/v2",
    "/metrics",
    "/v2/models//infer",
    "/v3/infer",
]
SERVED_IDS = [f"served-{i}" for i in range(8)]
"""Requests answered before the fuzzing, so feedback items can match real predictions."""

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "inf", "-Infinity", "1e400", "", "FP64", "0", "1"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
numbers = (
    st.floats(allow_nan=False, allow_infinity=False, width=64)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, 127, 128, 255, 256, -129, 65504, 65505, 3.4e38, 3.5e38, 1e308])
)
ids = st.none() | st.text(max_size=140) | st.integers() | st.sampled_from(SERVED_IDS) | json_values


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A tensor near a valid one: each part valid, or nearly, or anything."""
    rows = draw(st.integers(0, 4))
    width = draw(st.sampled_from([4, 4, 4, 1, 3, 0]))
    shape = draw(
        st.just([rows, width])
        | st.just([rows * width])
        | st.lists(st.integers(-2, 2**64), max_size=3)
        | json_values
    )
    flat = draw(st.lists(numbers, min_size=rows * width, max_size=rows * width))
    data = draw(
        st.just(flat)
        | st.just([flat[i : i + width] for i in range(0, len(flat), width or 1)])
        | st.lists(numbers | scalars, max_size=10)
        | json_values
    )
    datatype = draw(st.sampled_from(list(DTYPES)) | json_values)
    tensor = {"name": draw(st.just("input-0") | json_values), "shape": shape}
    tensor |= {"datatype": datatype, "data": data}
    for key in draw(st.lists(st.sampled_from(list(tensor)), max_size=2, unique=True)):
        del tensor[key]  # a missing field
    return tensor


@st.composite
def infer_bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {"inputs": draw(st.lists(tensors(), min_size=1, max_size=4))}
    if draw(st.booleans()):
        body["id"] = draw(ids)
    if draw(st.booleans()):
        names = st.sampled_from(["predict", "predict_proba", "embedding"]) | json_values
        body["outputs"] = draw(
            st.lists(st.fixed_dictionaries({"name": names}), max_size=3) | json_values
        )
    return draw(st.just(body) | st.just(body) | st.just(body) | json_values)


labels = (
    st.sampled_from([0, 1, 2, "0", "1", "2", 1.0, "setosa", "", "\x00", "a\nb"])
    | scalars
    | json_values
)
feedback_items = st.fixed_dictionaries(
    {"id": ids},
    optional={"labels": st.lists(labels, max_size=4) | json_values, "label": labels},
)
feedback_bodies = (
    feedback_items
    | st.fixed_dictionaries({"feedback": st.lists(feedback_items, max_size=4) | json_values})
    | json_values
)


def encode(body: Any, raw: bool) -> bytes:
    """JSON of the body; `raw` lets NaN and Infinity literals and cuts it short."""
    text = json.dumps(body, allow_nan=raw)
    return text[: len(text) // 2].encode() if raw and len(text) > 20 else text.encode()


def answers(client: httpx.Client, method: str, path: str, content: bytes) -> httpx.Response:
    """One request on the kept-alive connection; a dropped connection raises here."""
    response = client.request(method, path, content=content)
    assert response.status_code < 500, (method, path, content[:300], response.text)
    if response.status_code >= 400 and method != "HEAD":
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str), response.text
        assert "\n" not in response.text
        if response.status_code == 405:
            assert response.headers["allow"] in ("GET", "POST")
    return response


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Series]]:
    """A monitored server (with a baseline, so drift runs too) warmed so that every series a
    good client can make exists already: every class predicted, labelled, and confused
    with every other. Its URL and those series."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    predicted = MODEL.predict(X)
    profile = build_profile({f"f{i}": X[:, i] for i in range(4)}, predictions=predicted)
    profile.save(tmp / "profile.json")
    with serving(tmp / "iris.joblib", "--baseline", str(tmp / "profile.json")) as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            warm = client.post(
                "/v2/models/iris/infer", json={"id": "warm", "inputs": [matrix_input(X)]}
            )
            assert warm.status_code == 200
            truth = [int(p + i) % 3 for i, p in enumerate(predicted)]  # every (actual, predicted)
            fed = client.post("/v2/models/iris/feedback", json={"id": "warm", "labels": truth})
            assert fed.json() == {"matched": len(X), "late": 0}
            for i, request_id in enumerate(SERVED_IDS):
                body = {"id": request_id, "inputs": [matrix_input(X[i : i + 1 + i % 2])]}
                assert client.post("/v2/models/iris/infer", json=body).status_code == 200
        yield url, set(series(url))


def test_no_request_makes_a_5xx_drops_the_connection_or_adds_series(
    fuzzed: tuple[str, Series],
) -> None:
    url, warmed = fuzzed
    with httpx.Client(base_url=url, timeout=10) as client:

        @FUZZ
        @given(
            st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "HEAD"]),
            st.sampled_from(PATHS[:4] * 4 + PATHS),
            infer_bodies() | feedback_bodies,
            st.sampled_from([False, False, False, True]),  # raw JSON a quarter of the time
        )
        def mutated(method: str, path: str, body: Any, raw: bool) -> None:
            answers(client, method, path, encode(body, raw))

        mutated()
        good = client.post("/v2/models/iris/infer", json={"inputs": [matrix_input(X[:2])]})
        assert good.status_code == 200, "the server still answers a good request"
        assert good.json()["outputs"][0]["data"] == MODEL.predict(X[:2]).tolist()
    after = set(series(url))
    assert after == warmed, f"series added: {sorted(after - warmed)[:10]}"


def test_no_feedback_makes_a_5xx_or_adds_series(fuzzed: tuple[str, Series]) -> None:
    url, warmed = fuzzed
    with httpx.Client(base_url=url, timeout=10) as client:

        @settings(FUZZ, max_examples=400)  # three requests each
        @given(
            feedback_bodies,
            st.sampled_from(SERVED_IDS),
            st.lists(labels, min_size=1, max_size=1) | st.lists(labels, max_size=3),
        )
        def mutated(body: Any, served: str, some: list[Any]) -> None:
            answers(client, "POST", "/v2/models/iris/feedback", encode(body, False))
            # and labels for a prediction just made, which reach the metrics if taken
            one_row = {"id": served, "inputs": [matrix_input(X[:1])]}
            assert client.post("/v2/models/iris/infer", json=one_row).status_code == 200
            aimed = {"id": served, "labels": some}
            answers(client, "POST", "/v2/models/iris/feedback", encode(aimed, False))

        mutated()
        assert client.get("/v2/health/ready").json() == {"ready": True}
    after = set(series(url))
    assert after == warmed, f"series added: {sorted(after - warmed)[:10]}"


@st.composite
def binary_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A binary-extension body near a valid one, and its Inference-Header-Content-Length:
    inputs whose data moved to the binary part with a right, wrong or junk
    binary_data_size, bytes that may be short or long, and a header that may lie."""
    body = draw(infer_bodies())
    blobs = []
    for tensor in body.get("inputs", []) if isinstance(body, dict) else []:
        if not isinstance(tensor, dict) or not draw(st.booleans()):
            continue
        data = tensor.pop("data", [])
        width = draw(st.sampled_from([8, 4, 2, 1]))
        blob = draw(
            st.just(b"\x00" * width * (len(data) if isinstance(data, list) else 1))
            | st.binary(max_size=64)
        )
        size = draw(st.just(len(blob)) | st.integers(-2, 80) | json_values)
        tensor["parameters"] = draw(st.just({"binary_data_size": size}) | json_values)
        if draw(st.integers(0, 9)) == 0:
            tensor["data"] = data  # both
        blobs.append(blob)
    if isinstance(body, dict) and draw(st.booleans()):
        body["parameters"] = {"binary_data_output": draw(st.booleans() | json_values)}
    head = json.dumps(body).encode()
    declared = draw(
        st.just(str(len(head)))
        | st.integers(-3, len(head) + 100).map(str)
        | st.sampled_from(["", "x", "1e3", "+12", "1_0", "99999999999999999999"])
    )
    return head + b"".join(blobs), declared


def test_no_binary_request_makes_a_5xx_or_adds_series(fuzzed: tuple[str, Series]) -> None:
    url, warmed = fuzzed
    with httpx.Client(base_url=url, timeout=10) as client:

        @settings(FUZZ, max_examples=400)
        @given(st.sampled_from(PATHS[:2]), binary_bodies())
        def binary(path: str, body: tuple[bytes, str]) -> None:
            content, declared = body
            response = client.post(
                path, content=content, headers={"Inference-Header-Content-Length": declared}
            )
            assert response.status_code < 500, (content[:300], declared, response.text)
            if response.status_code >= 400:
                assert list(response.json()) == ["error"], response.text

        binary()
    after = set(series(url))
    assert after == warmed, f"series added: {sorted(after - warmed)[:10]}"
