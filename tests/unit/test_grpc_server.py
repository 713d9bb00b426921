"""`ciclo serve`'s gRPC service as a real process: tritonclient.grpc, the kserve SDK's
clients, health checking, reflection, clear errors, and monitoring that sees gRPC traffic."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from test_server import MODEL, X, Y, free_port, serving
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def addresses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The REST URL and the gRPC address of one monitored server."""
    port = free_port()
    with serving(tmp_path_factory.mktemp("grpc") / "iris.joblib", grpc_port=port) as url:
        yield url, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stub(addresses: tuple[str, str]) -> Iterator[Any]:
    with grpc.insecure_channel(addresses[1]) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def test_tritonclient_grpc_gets_the_models_predictions(addresses: tuple[str, str]) -> None:
    client = triton.InferenceServerClient(addresses[1])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("iris") and client.is_model_ready("iris", "v1")
    assert not client.is_model_ready("iris", "v9") and not client.is_model_ready("rose")
    with pytest.raises(InferenceServerException, match="unknown model 'rose'"):
        client.get_model_metadata("rose")
    assert client.get_server_metadata(as_json=True)["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("iris", as_json=True)
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": ["-1", "4"]}]
    for datatype in ("FP64", "FP32"):
        x = X.astype(np.float64 if datatype == "FP64" else np.float32)
        tensor = triton.InferInput("input-0", list(x.shape), datatype)
        tensor.set_data_from_numpy(x)  # raw_input_contents
        result = client.infer("iris", [tensor], request_id="g-1")
        assert result.get_response().id == "g-1"
        np.testing.assert_array_equal(result.as_numpy("predict"), MODEL.predict(x))
        np.testing.assert_allclose(result.as_numpy("predict_proba"), MODEL.predict_proba(x))


def test_typed_contents_and_per_feature_inputs_are_the_same_request(stub: Any) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    for i in range(4):
        tensor = request.inputs.add(name=f"f{i}", datatype="FP64", shape=[len(X)])
        tensor.contents.fp64_contents.extend(X[:, i].tolist())
    request.outputs.add(name="predict")
    response = stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["predict"]
    predicted = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    np.testing.assert_array_equal(predicted, MODEL.predict(X))
    assert len(response.id) == 32, "an id for feedback even when the request has none"


def _request(**fields: Any) -> Any:
    """A one-input request of X[:2] as raw FP64, with `fields` changed."""
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [2, 4]}
    tensor.update({k: v for k, v in fields.items() if k in ("name", "datatype", "shape")})
    raw = fields.get("raw", [X[:2].tobytes()])
    request = pb.ModelInferRequest(model_name=fields.get("model", "iris"), raw_input_contents=raw)
    request.inputs.add(**tensor)
    for name in fields.get("outputs", ()):
        request.outputs.add(name=name)
    return request


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"raw": [X[:2].tobytes()[:-8]]}, "INVALID_ARGUMENT", "takes 64 bytes, not 56"),
        ({"raw": [b"", b""]}, "INVALID_ARGUMENT", "raw_input_contents has 2 entries for 1"),
        ({"raw": []}, "INVALID_ARGUMENT", "contents.fp64_contents has 0"),
        ({"datatype": "FLOAT"}, "INVALID_ARGUMENT", "unknown datatype 'FLOAT'"),
        ({"datatype": "BYTES"}, "INVALID_ARGUMENT", "BYTES inputs are not features"),
        ({"shape": [2, 3, 1]}, "INVALID_ARGUMENT", "must be [rows, features] or [rows]"),
        ({"shape": [0, 4], "raw": [b""]}, "INVALID_ARGUMENT", "has no rows"),
        ({"shape": [4, 2]}, "INVALID_ARGUMENT", "takes 4 features, the request has 2"),
        ({"outputs": ["embedding"]}, "INVALID_ARGUMENT", "unknown output 'embedding'"),
        ({"raw": [np.full(8, np.nan).tobytes()]}, "INVALID_ARGUMENT", "NaN is not a value"),
        ({"model": "rose"}, "NOT_FOUND", "unknown model 'rose'"),
    ],
)
def test_bad_requests_are_clear_client_errors(
    stub: Any, fields: dict[str, Any], code: str, fragment: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(_request(**fields))
    assert caught.value.code().name == code
    assert fragment in caught.value.details()


def test_fp16_needs_raw_contents_and_an_empty_request_is_refused(stub: Any) -> None:
    request = pb.ModelInferRequest(model_name="iris")
    request.inputs.add(name="x", datatype="FP16", shape=[1, 4])
    with pytest.raises(grpc.RpcError, match="FP16 data goes in raw_input_contents"):
        stub.ModelInfer(request)
    with pytest.raises(grpc.RpcError, match="'inputs' must be a non-empty list"):
        stub.ModelInfer(pb.ModelInferRequest(model_name="iris"))


def test_tritonclient_sees_errors_as_invalid_argument(addresses: tuple[str, str]) -> None:
    client = triton.InferenceServerClient(addresses[1])
    tensor = triton.InferInput("input-0", [2, 3], "FP64")
    tensor.set_data_from_numpy(X[:2, :3])
    with pytest.raises(InferenceServerException) as caught:
        client.infer("iris", [tensor])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "takes 4 features, the request has 3" in caught.value.message()


def test_health_checking_and_reflection_are_served(addresses: tuple[str, str]) -> None:
    with grpc.insecure_channel(addresses[1]) as channel:
        checks = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            status = checks.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "inference.GRPCInferenceService" in services
        assert "grpc.health.v1.Health" in services


def test_grpc_traffic_reaches_feedback_quality_and_metrics(
    addresses: tuple[str, str], stub: Any
) -> None:
    url = addresses[0]
    before = _requests(url)
    for start in range(0, 150, 50):
        request = _request(shape=[50, 4], raw=[X[start : start + 50].tobytes()])
        request.id = f"grpc-{start}"
        stub.ModelInfer(request)
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(_request(datatype="FLOAT"))
    feedback = [
        {"id": f"grpc-{start}", "labels": Y[start : start + 50].tolist()}
        for start in range(0, 150, 50)
    ]
    response = httpx.post(f"{url}/v2/models/iris/feedback", json={"feedback": feedback})
    assert response.json() == {"matched": 150, "late": 0}
    after = _requests(url)
    assert after["success"] - before["success"] == 3
    assert after["client_error"] - before["client_error"] == 1
    exposition = httpx.get(f"{url}/metrics").text
    accuracy = next(
        line for line in exposition.splitlines() if line.startswith("ciclo_window_accuracy{")
    )
    assert float(accuracy.split()[-1]) == pytest.approx(float((MODEL.predict(X) == Y).mean()))


def _requests(url: str) -> dict[str, float]:
    counts = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("ciclo_requests_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = float(line.split()[-1])
    return counts


# kserve's generated messages and tritonclient's share the `inference` package, and one
# process's descriptor pool takes only one of them: the kserve SDK runs in its own.
KSERVE_CLIENTS = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest
    from kserve.inference_client import RESTConfig

    rest_url, grpc_address = sys.argv[1:3]
    x = np.array(json.loads(sys.argv[3]))

    def request(binary):
        tensor = InferInput("input-0", list(x.shape), "FP64")
        tensor.set_data_from_numpy(x, binary_data=binary)
        return InferRequest(model_name="iris", infer_inputs=[tensor], request_id="ks-1")

    async def main():
        out = {}
        rest = InferenceRESTClient(RESTConfig(protocol="v2"))
        for binary in (False, True):
            response = await rest.infer(rest_url, request(binary), model_name="iris")
            out[f"rest-{binary}"] = {o.name: o.as_numpy().tolist() for o in response.outputs}
        grpc_client = InferenceGRPCClient(grpc_address)
        response = await grpc_client.infer(request(True))
        out["grpc"] = {o.name: o.as_numpy().tolist() for o in response.outputs}
        out["grpc-id"] = response.id
        await grpc_client.close()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_kserve_sdk_rest_and_grpc_clients_get_the_models_predictions(
    addresses: tuple[str, str],
) -> None:
    x = X[::10]
    done = subprocess.run(
        [sys.executable, "-c", KSERVE_CLIENTS, *addresses, json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results.pop("grpc-id") == "ks-1"
    assert set(results) == {"rest-False", "rest-True", "grpc"}
    for outputs in results.values():
        np.testing.assert_array_equal(outputs["predict"], MODEL.predict(x))
        np.testing.assert_allclose(outputs["predict_proba"], MODEL.predict_proba(x))
