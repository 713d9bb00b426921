"""The binary tensor data extension: the codec against tritonclient's, and `ciclo serve`
answering tritonclient.http with its defaults (binary inputs and outputs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from sklearn.linear_model import LogisticRegression
from test_server import MODEL, X, Y, serving
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from ciclo.serving import binary
from ciclo.serving.protocol import DTYPES, ProtocolError

NUMERIC = [name for name in DTYPES if name != "BYTES"]


def request(*tensors: tuple[str, np.ndarray], **extra: Any) -> tuple[bytes, int]:
    """A binary request body (JSON, then each tensor's bytes) and its JSON's length."""
    inputs, blobs = [], []
    for datatype, array in tensors:
        raw = array.astype(DTYPES[datatype]).tobytes()
        inputs.append(
            {
                "name": f"x{len(inputs)}",
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    head = orjson.dumps({"inputs": inputs, **extra})
    return b"".join([head, *blobs]), len(head)


def decode(body: bytes, length: int, n_features: int | None = None) -> np.ndarray:
    head, blob = binary.split(body, str(length).encode())
    return binary.decode_request(orjson.loads(head), blob, n_features)[0]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_numeric_datatype_decodes_to_its_values(datatype: str) -> None:
    values = np.array([[0, 1, 1, 0], [1, 0, 1, 1]]).astype(DTYPES[datatype])
    matrix = decode(*request((datatype, values)))
    assert matrix.dtype == values.dtype
    np.testing.assert_array_equal(matrix, values)


@pytest.mark.parametrize("datatype", NUMERIC)
def test_every_datatype_encodes_as_tritonclient_reads_it(datatype: str) -> None:
    values = np.array([[0, 1, 1], [1, 0, 1]]).astype(DTYPES[datatype])
    body, length = binary.encode_response({"id": "r"}, [("out", values)], {"out"})
    header = orjson.loads(body[:length])
    (tensor,) = header["outputs"]
    assert tensor["datatype"] == datatype and tensor["shape"] == [2, 3]
    result = triton.InferResult.from_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("out"), values)


def test_bytes_outputs_are_length_prefixed_as_tritonclient_serializes_them() -> None:
    labels = np.array(["setosa", "virginica", "é"], dtype=object)
    raw = binary.to_bytes(labels)
    assert raw == serialize_byte_tensor(labels).item()
    assert [b.decode() for b in deserialize_bytes_tensor(raw)] == ["setosa", "virginica", "é"]


def test_json_and_binary_inputs_mix_and_per_feature_inputs_stack() -> None:
    body, length = request(("FP32", X[:3, 0]), ("FP64", X[:3, 1]))
    head = orjson.loads(body[:length])
    head["inputs"].insert(
        1, {"name": "j", "shape": [3], "datatype": "FP64", "data": X[:3, 2].tolist()}
    )
    new_head = orjson.dumps(head)
    matrix = decode(new_head + body[length:], len(new_head))
    np.testing.assert_allclose(matrix, X[:3, [0, 2, 1]], rtol=1e-6)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda h, b: (h, b[:-1]), "runs past the end of the binary data (31 bytes left)"),
        (lambda h, b: (h, b + b"\0"), "1 bytes beyond what the inputs' binary_data_size"),
        (
            lambda h, b: (_size(h, 30), b[:30]),
            "shape [2, 4] of FP32 takes 32 bytes, not 30",
        ),
        (lambda h, b: (_size(h, -1), b), "binary_data_size must be a non-negative integer"),
        (lambda h, b: (_size(h, "32"), b), "binary_data_size must be a non-negative integer"),
        (
            lambda h, b: (_set(h, data=[1] * 8), b),
            "has both 'data' and binary_data_size",
        ),
        (lambda h, b: (_set(h, datatype="BF16"), b), "unknown datatype 'BF16'"),
        (lambda h, b: (_set(h, datatype="BYTES"), b), "BYTES inputs are not features"),
        (lambda h, b: (_set(h, shape=[2, -4]), b), "shape must be a list of non-negative"),
        (
            lambda h, b: (h, np.full(8, np.nan, np.float32).tobytes()),
            "NaN is not a value a model can take",
        ),
        (
            lambda h, b: (h, np.full(8, np.inf, np.float32).tobytes()),
            "inf is out of range for FP32",
        ),
    ],
)
def test_bad_binary_requests_name_the_problem(mutate: Any, fragment: str) -> None:
    body, length = request(("FP32", np.ones((2, 4))))
    head, blob = mutate(orjson.loads(body[:length]), body[length:])
    head = orjson.dumps(head)
    with pytest.raises(ProtocolError, match=re.escape(fragment)):
        decode(head + blob, len(head))


def test_bool_bytes_other_than_0_or_1_and_bad_header_lengths_are_refused() -> None:
    body, length = request(("BOOL", np.ones((1, 4))))
    with pytest.raises(ProtocolError, match="BOOL data must be bytes 0 or 1"):
        decode(body[:length] + b"\x01\x02\x00\x01", length)
    for declared in (b"x", b"0", str(len(body) + 1).encode(), b"-3"):
        with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
            binary.split(body, declared)


def _size(head: dict[str, Any], size: Any) -> dict[str, Any]:
    head["inputs"][0]["parameters"]["binary_data_size"] = size
    return head


def _set(head: dict[str, Any], **fields: Any) -> dict[str, Any]:
    head["inputs"][0].update(fields)
    return head


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("binary") / "iris.joblib") as url:
        yield url


def test_server_metadata_announces_the_extension(server: str) -> None:
    assert httpx.get(f"{server}/v2").json()["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_http_with_its_defaults_gets_the_models_predictions(
    server: str, datatype: str
) -> None:
    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    x = X.astype(DTYPES[datatype])
    tensor = triton.InferInput("input-0", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)  # binary_data=True, and every output binary too
    result = client.infer("iris", [tensor], request_id="bin-1")
    assert result.get_response()["id"] == "bin-1"
    np.testing.assert_array_equal(result.as_numpy("predict"), MODEL.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), MODEL.predict_proba(x))
    # one output binary, the other JSON, as each asks
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=False),
        triton.InferRequestedOutput("predict_proba"),
    ]
    result = client.infer("iris", [tensor], outputs=outputs)
    tensors = {t["name"]: t for t in result.get_response()["outputs"]}
    assert "data" in tensors["predict"] and "parameters" in tensors["predict_proba"]
    np.testing.assert_array_equal(result.as_numpy("predict"), MODEL.predict(x))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), MODEL.predict_proba(x))


def test_bytes_predictions_reach_tritonclient(tmp_path: Path) -> None:
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[Y]
    model = LogisticRegression(max_iter=500).fit(X, names)
    with serving(tmp_path / "names.joblib", model=model) as url:
        client = triton.InferenceServerClient(url=url.removeprefix("http://"))
        tensor = triton.InferInput("input-0", list(X.shape), "FP64")
        tensor.set_data_from_numpy(X)
        result = client.infer("iris", [tensor], outputs=[triton.InferRequestedOutput("predict")])
        (output,) = result.get_response()["outputs"]
        assert output["datatype"] == "BYTES"
        assert [v.decode() for v in result.as_numpy("predict")] == model.predict(X).tolist()


@pytest.mark.parametrize(
    ("body", "length", "fragment"),
    [
        (b'{"inputs": []}', b"nope", "Inference-Header-Content-Length must be a number"),
        (b'{"inputs": []}', b"99", "Inference-Header-Content-Length is 99, the body has 14"),
        (b'{"inputs": [}' + b"\0" * 8, b"13", "malformed JSON"),
    ],
)
def test_bad_binary_bodies_are_400s_naming_the_problem(
    server: str, body: bytes, length: bytes, fragment: str
) -> None:
    response = httpx.post(
        f"{server}/v2/models/iris/infer",
        content=body,
        headers={"Inference-Header-Content-Length": length.decode()},
    )
    assert response.status_code == 400 and fragment in response.json()["error"]


def test_a_binary_request_of_wrong_size_is_a_400_and_the_server_goes_on(server: str) -> None:
    body, length = request(("FP64", X[:2]))
    response = httpx.post(
        f"{server}/v2/models/iris/infer",
        content=body[:-8],
        headers={"Inference-Header-Content-Length": str(length)},
    )
    assert response.status_code == 400
    assert "runs past the end of the binary data (56 bytes left)" in response.json()["error"]
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200
