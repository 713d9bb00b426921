"""`ciclo serve` as a real process: the protocol over HTTP, by hand and by tritonclient."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, Y = load_iris(return_X_y=True)
MODEL = LogisticRegression(max_iter=500).fit(X, Y)
MAX_BODY = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(
    path: Path,
    *extra: str,
    model: Any = MODEL,
    fmt: str = "sklearn",
    grpc_port: int = 0,
    version: str = "v1",
) -> Iterator[str]:
    """`ciclo serve` for the model at `path` (the iris model by default, saved there with
    joblib; with `model=None`, the file already there), as a process; its URL once it
    answers ready. gRPC is off unless given a port (its default, 8081, may be taken)."""
    if model is not None:
        joblib.dump(model, path)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "ciclo.cli.main",
        "serve",
        "--model",
        str(path),
        "--format",
        fmt,
        "--name",
        "iris",
        "--version",
        version,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
    ]
    # its output to a file: a pipe nobody reads would block the server once full
    log = path.with_name(path.name + ".log")
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, *extra], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # generous: worker processes each import the runtime, slow on two loaded cores
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "ciclo serve did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(
        tmp_path_factory.mktemp("model") / "iris.joblib", "--max-body", str(MAX_BODY)
    ) as url:
        yield url


def infer(url: str, body: Any, path: str = "/v2/models/iris/infer") -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=10)


def matrix_input(x: np.ndarray, datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "input-0", "shape": list(x.shape), "datatype": datatype, "data": x.tolist()}


def test_health_server_and_model_metadata(server: str):
    assert httpx.get(f"{server}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server}/v2").json()["name"] == "ciclo"
    meta = httpx.get(f"{server}/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == ["v1"]
    assert meta["inputs"][0]["shape"] == [-1, 4]
    assert meta["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert httpx.get(f"{server}/v2/models/iris/versions/v1/ready").json() == {
        "name": "iris",
        "ready": True,
    }


def test_infer_matches_the_model_and_carries_an_id(server: str):
    response = infer(server, {"inputs": [matrix_input(X)]})
    assert response.status_code == 200
    body = response.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    np.testing.assert_array_equal(outputs["predict"]["data"], MODEL.predict(X))
    assert outputs["predict_proba"]["shape"] == [150, 3]
    np.testing.assert_allclose(
        np.array(outputs["predict_proba"]["data"]).reshape(150, 3), MODEL.predict_proba(X)
    )
    assert len(body["id"]) == 32 and response.headers["x-request-id"] == body["id"]
    again = infer(
        server,
        {"id": "req-7", "inputs": [matrix_input(X[:2])], "outputs": [{"name": "predict"}]},
        "/v2/models/iris/versions/v1/infer",
    ).json()
    assert again["id"] == "req-7" and [o["name"] for o in again["outputs"]] == ["predict"]


def test_one_input_per_feature_is_the_same_request(server: str):
    inputs = [
        {"name": f"f{i}", "shape": [150], "datatype": "FP32", "data": X[:, i].tolist()}
        for i in range(4)
    ]
    body = infer(server, {"inputs": inputs}).json()
    np.testing.assert_array_equal(body["outputs"][0]["data"], MODEL.predict(X.astype(np.float32)))


def test_tritonclient_runs_inference(server: str):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("iris")
    tensor = triton.InferInput("input-0", list(X.shape), "FP64")
    tensor.set_data_from_numpy(X, binary_data=False)
    result = client.infer(
        "iris", [tensor], outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)]
    )
    np.testing.assert_allclose(result.as_numpy("predict_proba"), MODEL.predict_proba(X))


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "malformed JSON"),
        (
            {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3]}]},
            400,
            "needs 8 values",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FLOAT", "data": [1, 2, 3, 4]}]},
            400,
            "unknown datatype 'FLOAT'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
            400,
            "takes 4 features, the request has 3",
        ),
        ({"inputs": []}, 400, "non-empty list"),
        (
            {"inputs": [matrix_input(X[:1])], "outputs": [{"name": "embedding"}]},
            400,
            "unknown output 'embedding'",
        ),
    ],
)
def test_bad_requests_get_a_clear_400(server: str, body: Any, status: int, fragment: str):
    if isinstance(body, bytes):
        response = httpx.post(f"{server}/v2/models/iris/infer", content=body, timeout=10)
    else:
        response = infer(server, body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_unknown_model_version_route_and_oversized_body(server: str):
    assert infer(server, {"inputs": [matrix_input(X)]}, "/v2/models/rose/infer").status_code == 404
    assert (
        "unknown version"
        in infer(server, {"inputs": [matrix_input(X)]}, "/v2/models/iris/versions/v9/infer").json()[
            "error"
        ]
    )
    assert httpx.get(f"{server}/v3/whatever").status_code == 404
    wrong_method = httpx.get(f"{server}/v2/models/iris/infer")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    big = np.zeros((10_000, 4))  # about 200 KB of JSON
    response = infer(server, {"inputs": [matrix_input(big)]})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]
    assert httpx.get(f"{server}/v2/health/live").status_code == 200, "the server goes on serving"


def test_several_worker_processes_each_load_the_model(tmp_path: Path):
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "ciclo.cli.main",
            "serve",
            "--model",
            "m",
            "--format",
            "sklearn",
            "--name",
            "iris",
            "--version",
            "v1",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--workers > 1 needs --no-monitoring" in refused.stderr
    with serving(tmp_path / "iris.joblib", "--workers", "2", "--no-monitoring") as url:
        response = infer(url, {"inputs": [matrix_input(X[:5])]})
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == MODEL.predict(X[:5]).tolist()
