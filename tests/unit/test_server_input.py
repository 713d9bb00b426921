"""`ciclo serve` against bad input, as a real process: every malformed request is a 4xx
with a one-line {"error"}, checked before the model or the prediction store sees it,
and counted as a client error; feedback labels never add metric series without bound."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import xgboost
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.unit.test_server import MODEL, X, Y, matrix_input, serving

from ciclo.drift.profile import build_profile
from ciclo.serving.feedback import REASONS, FeedbackError, Label
from ciclo.serving.loaders import load, model_classes
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import UNLISTED_LABELS, Monitor
from ciclo.serving.protocol import MAX_ID

INFER = "/v2/models/iris/infer"
FEEDBACK = "/v2/models/iris/feedback"
ROW = X[0].tolist()

Series = set[tuple[str, tuple[tuple[str, str], ...]]]


def series(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics by name and labels (model and version left out)."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model",)))
            out[(s.name, labels)] = s.value
    return out


def requests_by_outcome(url: str) -> dict[str, float]:
    m = series(url)
    return {
        o: m[("ciclo_requests_total", (("outcome", o), ("version", "v1")))]
        for o in ("success", "client_error", "server_error")
    }


def rejected(url: str) -> dict[str, float]:
    m = series(url)
    return {
        r: m[("ciclo_feedback_rejected_total", (("reason", r), ("version", "v1")))] for r in REASONS
    }


def tensor(data: Any, shape: Any = None, datatype: Any = "FP64", name: Any = "x") -> dict[str, Any]:
    return {
        "name": name,
        "shape": [1, len(data)] if shape is None else shape,
        "datatype": datatype,
        "data": data,
    }


def post(url: str, body: Any, path: str = INFER) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=content, timeout=10)


def assert_client_error(response: httpx.Response, fragment: str, status: int = 400) -> None:
    """A 4xx whose body is one line of JSON, {"error": ...}, naming the problem."""
    assert response.status_code == status, response.text
    assert "\n" not in response.text
    body = response.json()
    assert list(body) == ["error"] and fragment in body["error"], body
    assert "x-request-id" not in response.headers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("input") / "iris.joblib") as url:
        yield url


BAD_INFER = [
    # (body, what the error says)
    ({"inputs": [tensor(ROW, datatype=["FP64"])]}, "unknown datatype ['FP64']"),
    ({"inputs": [tensor(ROW, datatype={"a": 1})]}, "unknown datatype"),
    ({"inputs": [tensor(ROW, datatype=7)]}, "unknown datatype 7"),
    ({"inputs": [tensor([1, 2, 3, 400], datatype="INT8")]}, "400 is out of range for INT8"),
    ({"inputs": [tensor([1, 2, 3, -129], datatype="INT8")]}, "-129 is out of range for INT8"),
    ({"inputs": [tensor([1, 2, 3, -1], datatype="UINT8")]}, "-1 is out of range for UINT8"),
    ({"inputs": [tensor([1, 2, 3, 256], datatype="UINT16")]}, None),  # in range: taken
    ({"inputs": [tensor([1, 2, 3, 2**63], datatype="INT64")]}, "is out of range for INT64"),
    ({"inputs": [tensor([1, 2, 3, -(2**64)], datatype="INT64")]}, "out of range for INT64"),
    ({"inputs": [tensor([1, 2, 3, 2**64], datatype="UINT64")]}, "out of range for UINT64"),
    ({"inputs": [tensor([1, 2, 3, 2**70], datatype="FP64")]}, None),  # a big but finite float
    ({"inputs": [tensor([1, 2, 3, 1.5], datatype="INT32")]}, "INT32 data must be integers"),
    ({"inputs": [tensor([True, False, True, 1], datatype="BOOL")]}, None),
    ({"inputs": [tensor([1, 2, 3, 0], datatype="BOOL")]}, "3 is out of range for BOOL"),
    ({"inputs": [tensor([1, 2, 3, "NaN"])]}, "data must be numbers, not 'NaN'"),
    ({"inputs": [tensor([1, 2, 3, "inf"], datatype="FP32")]}, "not 'inf'"),
    ({"inputs": [tensor([1, 2, 3, "4"])]}, "data must be numbers, not '4'"),
    ({"inputs": [tensor([1, 2, 3, None])]}, "data must be numbers, not None"),
    ({"inputs": [tensor([1, 2, 3, {"v": 4}])]}, "data must be numbers"),
    ({"inputs": [tensor([1, 2, 3, 1e300], datatype="FP32")]}, "1e+300 is out of range for FP32"),
    ({"inputs": [tensor([1, 2, 3, -1e39], datatype="FP32")]}, "out of range for FP32"),
    ({"inputs": [tensor([1, 2, 3, 1e300])]}, "1e+300 is out of range for FP64"),
    ({"inputs": [tensor([1, 2, 3, 70000], datatype="FP16")]}, "70000 is out of range for FP16"),
    ({"inputs": [tensor([], shape=[0, 4])]}, "shape [0, 4] has no rows"),
    ({"inputs": [tensor([], shape=[0])] * 4}, "shape [0] has no rows"),
    ({"inputs": [tensor([], shape=[1, 0])]}, "shape [1, 0] has no features"),
    ({"inputs": [tensor(ROW * 2, shape=[1, 2, 4])]}, "must be [rows, features] or [rows]"),
    ({"inputs": [tensor(ROW, shape=[])]}, "must be [rows, features] or [rows]"),
    ({"inputs": [tensor(ROW, shape=[True, 4])]}, "shape must be a list of non-negative integers"),
    ({"inputs": [tensor(ROW, shape=[1, -4])]}, "shape must be a list of non-negative integers"),
    ({"inputs": [tensor(ROW, shape="1,4")]}, "shape must be a list of non-negative integers"),
    ({"inputs": [tensor(ROW, shape=[2, 4])]}, "shape [2, 4] needs 8 values, data has 4"),
    ({"inputs": [tensor(ROW, shape=[2**62, 4])]}, "values, data has 4"),
    ({"inputs": [tensor(ROW, shape=[10**30, 4])]}, "shape must be a list of non-negative integers"),
    ({"inputs": [tensor([[1, 2, 3, [4]]], shape=[1, 4])]}, "is not numbers nested as its shape"),
    ({"inputs": [tensor([[ROW], 1, 2, 3])]}, "'data' mixes lists and values"),
    ({"inputs": [tensor([[[[v]]] for v in ROW])]}, "nested deeper than its shape"),
    ({"inputs": [tensor(ROW, datatype="BYTES")]}, "BYTES inputs are not features"),
    ({"inputs": [tensor(ROW, name=["x"])]}, "'name' must be a string"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]}, "input x: missing 'data'"),
    ({"inputs": [tensor(ROW)], "outputs": "predict"}, "'outputs' must be a list"),
    ({"inputs": [tensor(ROW)], "outputs": [{"name": 1}]}, "'outputs' must be a list"),
    ({"inputs": [tensor(ROW)], "outputs": [{"name": "x" * 1000}]}, "unknown output 'xxxx"),
    ({"inputs": {"x": 1}}, "'inputs' must be a non-empty list"),
    ([1, 2], "the request body must be a JSON object"),
    ({"id": {"a": 1}, "inputs": [tensor(ROW)]}, "'id' must be a string"),
    ({"id": "a\x01b", "inputs": [tensor(ROW)]}, "'id' must be 1 to 128 printable ASCII"),
    ({"id": "a\nb", "inputs": [tensor(ROW)]}, "printable ASCII"),
    ({"id": "a\r\nX-Evil: 1", "inputs": [tensor(ROW)]}, "printable ASCII"),
    ({"id": "é", "inputs": [tensor(ROW)]}, "printable ASCII"),
    ({"id": " padded", "inputs": [tensor(ROW)]}, "without leading or trailing spaces"),
    ({"id": "x" * (MAX_ID + 1), "inputs": [tensor(ROW)]}, "1 to 128"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, NaN]}]}',
     "malformed JSON"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 1e400]}]}',
     "malformed JSON"),
    (b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [-Infinity]}]}',
     "malformed JSON"),
    (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": ' + b"[" * 2000 + b"1"
     + b"]" * 2000 + b"}]}", "malformed JSON"),
    (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": ' + b"[" * 500 + b"1"
     + b"]" * 500 + b"}]}", "'data' is not numbers nested as its shape"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "fragment"), BAD_INFER)
def test_malformed_input_is_a_400_that_names_it_and_never_reaches_the_model(
    server: str, body: Any, fragment: str | None
) -> None:
    before = series(server)
    response = post(server, body)
    after = series(server)
    predictions = [k for k in after if k[0] == "ciclo_predictions_total"]
    predicted = sum(after[k] - before.get(k, 0) for k in predictions)
    if fragment is None:  # the edge of what is taken
        assert response.status_code == 200, response.text
        assert predicted == 1
        return
    assert_client_error(response, fragment)
    assert predicted == 0, "a refused request reaches neither the model nor the store"
    outcome = ("ciclo_requests_total", (("outcome", "client_error"), ("version", "v1")))
    assert after[outcome] == before[outcome] + 1
    server_errors = ("ciclo_requests_total", (("outcome", "server_error"), ("version", "v1")))
    assert after[server_errors] == 0


def test_the_edges_of_each_datatype_are_taken(server: str) -> None:
    for datatype, data in [
        ("INT8", [-128, 127, 0, 1]),
        ("UINT8", [0, 255, 1, 2]),
        ("INT64", [-(2**63), 2**63 - 1, 0, 1]),
        ("UINT64", [0, 2**64 - 1, 1, 2]),
        ("INT16", [1.0, 2.0, 3.0, 4.0]),  # integral floats are integers
        ("FP16", [65504, -65504, 0.5, 1]),
        ("FP32", [3.4e38, -3.4e38, 1e-45, 0]),
        ("FP64", [3.4e38, -3.4e38, 5e-324, 0]),
        ("BOOL", [True, False, 1, 0]),
    ]:
        response = post(server, {"inputs": [tensor(data, datatype=datatype)]})
        assert response.status_code == 200, (datatype, response.text)
    nested = post(server, {"inputs": [tensor([ROW, ROW], shape=[2, 4])]})
    assert nested.json()["outputs"][0]["shape"] == [2]
    columns = [tensor([[v]], shape=[1, 1], name=f"f{i}") for i, v in enumerate(ROW)]
    assert post(server, {"inputs": columns}).status_code == 200


def test_a_good_id_is_echoed_and_a_bad_one_is_refused_before_anything_is_stored(
    server: str,
) -> None:
    longest = "r" * (MAX_ID - 3) + "- 7"  # inner spaces are fine
    response = post(server, {"id": longest, "inputs": [matrix_input(X[:1])]})
    assert response.status_code == 200
    assert response.json()["id"] == longest == response.headers["x-request-id"]
    assert post(server, {"id": 42, "inputs": [matrix_input(X[:1])]}).json()["id"] == "42"
    # the old failure: the id went into X-Request-Id, the connection dropped, and the
    # prediction was kept all the same
    bad = post(server, {"id": "stored?\x7f", "inputs": [matrix_input(X[:1])]})
    assert_client_error(bad, "printable ASCII")
    # a request refused after the model ran (an output it does not have) keeps nothing either
    refused = post(
        server,
        {"id": "kept?", "inputs": [matrix_input(X[:1])], "outputs": [{"name": "embedding"}]},
    )
    assert_client_error(refused, "unknown output 'embedding'")
    late = post(server, {"id": "kept?", "label": int(Y[0])}, FEEDBACK)
    assert late.json() == {"matched": 0, "late": 1}
    kept = post(server, {"id": "kept!", "inputs": [matrix_input(X[:1])]})
    assert kept.status_code == 200
    assert post(server, {"id": "kept!", "label": int(Y[0])}, FEEDBACK).json()["matched"] == 1


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", INFER, "POST"),
        ("PUT", "/v2/models/iris/versions/v1/infer", "POST"),
        ("GET", FEEDBACK, "POST"),
        ("POST", "/v2/models/iris", "GET"),
        ("DELETE", "/v2/models/iris/ready", "GET"),
        ("POST", "/v2/health/live", "GET"),
        ("PATCH", "/v2/health/ready", "GET"),
        ("POST", "/v2", "GET"),
        ("POST", "/metrics", "GET"),
    ],
)
def test_a_wrong_method_is_a_405_with_allow(server: str, method: str, path: str, allow: str):
    response = httpx.request(method, server + path, timeout=10)
    assert_client_error(response, f"takes {allow}, not '{method}'", 405)
    assert response.headers["allow"] == allow


def test_client_errors_are_counted_apart_from_server_errors(tmp_path: Path) -> None:
    """A model that fails by itself (its own step makes NaN of a negative input) is the one
    kind of failure that counts as a server error, and error_rate reads only those."""
    sqrt_first = make_pipeline(FunctionTransformer(np.sqrt), LogisticRegression(max_iter=500)).fit(
        X, Y
    )
    with serving(tmp_path / "sqrt.joblib", model=sqrt_first) as url:
        assert post(url, {"inputs": [matrix_input(X[:2])]}).status_code == 200
        for body in [b for b, fragment in BAD_INFER if fragment is not None][:8]:
            assert 400 <= post(url, body).status_code < 500
        assert post(url, b"{", "/v2/models/iris/infer").status_code == 400
        assert httpx.get(f"{url}{INFER}").status_code == 405
        rose = post(url, {"inputs": [matrix_input(X[:1])]}, "/v2/models/rose/infer")
        assert rose.status_code == 404
        assert post(url, {"inputs": [matrix_input(np.zeros((20_000, 4)))]}).status_code == 200
        failed = post(url, {"inputs": [tensor([-1.0, 1.0, 1.0, 1.0])]})
        assert failed.status_code == 500 and "\n" not in failed.text
        assert failed.json()["error"].startswith("inference failed: ValueError: Input X contains")
        assert requests_by_outcome(url) == {
            "success": 2,
            "client_error": 8 + 1 + 1 + 1,
            "server_error": 1,
        }
        assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_feedback_labels_must_be_the_models_classes(server: str) -> None:
    """sklearn's classes_ are the labels taken; anything else is a 400 that adds no series
    (it did: 200 distinct label strings added 800 series)."""
    rows = X[:3]
    assert post(server, {"id": "fb-1", "inputs": [matrix_input(rows)]}).status_code == 200
    before, counts = set(series(server)), rejected(server)
    for i in range(200):
        response = post(server, {"id": "fb-1", "labels": [f"class-{i}", 0, 0]}, FEEDBACK)
        assert_client_error(response, f"label 'class-{i}' is not a class of this model (one of 0")
    assert rejected(server)["unknown_class"] == counts["unknown_class"] + 200
    assert set(series(server)) == before, "refused labels add no series"
    wrong_count = post(server, {"id": "fb-1", "labels": [0]}, FEEDBACK)
    assert_client_error(wrong_count, "1 labels for a request of 3 rows")
    malformed = post(server, {"id": "fb-1", "labels": [[0], 0, 0]}, FEEDBACK)
    assert_client_error(malformed, "labels must be numbers or strings")
    bad_id = post(server, {"id": "fb-1\x00", "label": 0}, FEEDBACK)
    assert_client_error(bad_id, "printable ASCII")
    huge = post(server, b'{"id": "fb-1", "labels": [1e400, 0, 0]}', FEEDBACK)
    assert_client_error(huge, "malformed JSON")
    late_but_unknown = post(server, {"id": "never", "label": "class-x"}, FEEDBACK)
    assert_client_error(late_but_unknown, "is not a class")
    now = rejected(server)
    assert now["row_count"] == counts["row_count"] + 1
    assert now["malformed"] == counts["malformed"] + 3
    assert now["unknown_class"] == counts["unknown_class"] + 201
    # the same labels spelled as value_key spells them (1.0 is 1) are taken, once
    taken = post(server, {"id": "fb-1", "labels": ["0", 1.0, 2]}, FEEDBACK)
    assert taken.json() == {"matched": 3, "late": 0}


def test_feedback_for_a_regressor_is_refused_and_counted(tmp_path: Path) -> None:
    with serving(tmp_path / "reg.joblib", model=LinearRegression().fit(X, Y)) as url:
        assert post(url, {"id": "r", "inputs": [matrix_input(X[:1])]}).status_code == 200
        response = post(url, {"id": "r", "label": 1.5}, FEEDBACK)
        assert_client_error(response, "feedback is for classifiers")
        assert rejected(url)["not_classifier"] == 1
        assert not [k for k in series(url) if k[0].startswith("ciclo_class_")]


def test_without_known_classes_labels_are_bounded(tmp_path: Path) -> None:
    """An ONNX model without a baseline says nothing of its classes: the classes it predicted
    and UNLISTED_LABELS others are taken, then no new label."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx = convert_sklearn(MODEL, initial_types=[("input", FloatTensorType([None, 4]))])
    path = tmp_path / "iris.onnx"
    path.write_bytes(onnx.SerializeToString())
    with serving(path, model=None, fmt="onnx") as url:
        n = UNLISTED_LABELS + 20
        rows = np.repeat(X[:1], n, axis=0)
        assert post(url, {"id": "many", "inputs": [matrix_input(rows, "FP32")]}).status_code == 200
        predicted = str(MODEL.predict(X[:1])[0])
        labels = [predicted] + [f"other-{i}" for i in range(UNLISTED_LABELS)] + [predicted] * 19
        assert post(url, {"id": "many", "labels": labels}, FEEDBACK).json()["matched"] == n
        assert post(url, {"id": "one", "inputs": [matrix_input(X[:1], "FP32")]}).status_code == 200
        full = post(url, {"id": "one", "label": "one-too-many"}, FEEDBACK)
        assert_client_error(full, f"{UNLISTED_LABELS} labels it never predicted")
        control = post(url, {"id": "one", "label": "tab\there"}, FEEDBACK)
        assert_client_error(control, "at most 128 printable characters")
        assert rejected(url)["class_limit"] == 1 and rejected(url)["unknown_class"] == 1
        actual = {dict(k[1])["class"] for k in series(url) if k[0] == "ciclo_class_actual_total"}
        assert len(actual) == UNLISTED_LABELS + 1
        # labels already taken still are, and late labels spend nothing
        assert post(url, {"id": "one", "label": "other-7"}, FEEDBACK).json()["matched"] == 1
        assert post(url, {"id": "gone", "label": "new"}, FEEDBACK).json() == {
            "matched": 0,
            "late": 1,
        }


def test_metrics_answers_a_get_of_itself_only(server: str) -> None:
    assert httpx.get(f"{server}/metrics").status_code == 200
    assert_client_error(httpx.get(f"{server}/metrics/"), "no such endpoint", 404)
    head = httpx.head(f"{server}/metrics")  # no body, as HEAD has none
    assert head.status_code == 405 and head.headers["allow"] == "GET"


def test_the_classes_come_from_the_model_and_the_baseline(tmp_path: Path) -> None:
    named = LogisticRegression(max_iter=500).fit(
        X, np.array(["setosa", "versicolor", "virginica"])[Y]
    )
    for model, classes in [
        (MODEL, ["0", "1", "2"]),
        (named, ["setosa", "versicolor", "virginica"]),
    ]:
        path = tmp_path / "m.joblib"
        joblib.dump(model, path)
        assert model_classes(load(path, "sklearn")) == classes
    joblib.dump(LinearRegression().fit(X, Y), tmp_path / "r.joblib")
    assert model_classes(load(tmp_path / "r.joblib", "sklearn")) is None
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3}, xgboost.DMatrix(X, Y), 2
    )
    booster.save_model(tmp_path / "b.json")
    assert model_classes(load(tmp_path / "b.json", "xgboost")) == ["0", "1", "2"]

    # no classes from the model (as ONNX): the baseline's predicted classes are the rule
    profile = build_profile({f"f{i}": X[:, i] for i in range(4)}, predictions=MODEL.predict(X))
    monitor = Monitor(RuntimeMetrics("m", "v1"), classifier=True, profile=profile)
    assert monitor.classes == {"0", "1", "2"}
    monitor.observe("a", X[:1], MODEL.predict(X[:1]))
    with pytest.raises(FeedbackError, match="label '3' is not a class") as refused:
        monitor.feedback([Label("a", ["3"])])
    assert refused.value.reason == "unknown_class"
    assert monitor.feedback([Label("a", ["0"])]) == (1, 0), "the refusal changed nothing"
