"""Open Inference Protocol v2 tensors, pure: JSON request in, a matrix out, and back.

A request's inputs become one (rows, features) matrix: a single input of shape
[rows, features], or several inputs of shape [rows] or [rows, 1], one per
feature, stacked in the order given. Data is row-major, flat or nested.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


class ProtocolError(Exception):
    """A bad request: the message names what is wrong, for a 400 {"error": ...}."""


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [x for row in data for x in _flatten(row)]
    if not isinstance(data, list):
        raise ProtocolError("'data' must be a list")
    return data


def decode_tensor(tensor: Any) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype, data")
    name = tensor.get("name", "?")
    for field in ("name", "shape", "datatype", "data"):
        if field not in tensor:
            raise ProtocolError(f"input {name}: missing '{field}'")
    datatype = tensor["datatype"]
    if datatype not in DTYPES:
        raise ProtocolError(
            f"input {name}: unknown datatype {datatype!r} (one of {', '.join(DTYPES)})"
        )
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"input {name}: shape must be a list of non-negative integers")
    flat = _flatten(tensor["data"])
    if len(flat) != math.prod(shape):
        raise ProtocolError(
            f"input {name}: shape {shape} needs {math.prod(shape)} values, data has {len(flat)}"
        )
    try:
        array = np.asarray(flat, dtype=DTYPES[datatype])
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"input {name}: data is not {datatype}: {e}") from None
    return array.reshape(shape)


def decode_request(
    body: Any, n_features: int | None
) -> tuple[np.ndarray, str | None, list[str] | None]:
    """The feature matrix, the caller's request id if any, and the outputs asked for."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    arrays = [decode_tensor(t) for t in inputs]
    if len(arrays) == 1 and arrays[0].ndim == 2:
        matrix = arrays[0]
    elif all(a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1) for a in arrays):
        rows = {a.shape[0] for a in arrays}
        if len(rows) != 1:
            raise ProtocolError(f"inputs have different numbers of rows: {sorted(rows)}")
        matrix = np.column_stack([a.reshape(-1) for a in arrays])
    else:
        raise ProtocolError(
            "send one input of shape [rows, features] or one [rows] input per feature"
        )
    if n_features is not None and matrix.shape[1] != n_features:
        raise ProtocolError(
            f"the model takes {n_features} features, the request has {matrix.shape[1]}"
        )
    if matrix.dtype == np.object_:
        raise ProtocolError("BYTES inputs are not features this model can take")
    outputs = body.get("outputs")
    names = (
        [str(o["name"]) for o in outputs if isinstance(o, dict) and "name" in o]
        if isinstance(outputs, list)
        else None
    )
    request_id = body.get("id")
    return matrix, str(request_id) if request_id is not None else None, names


def datatype_of(array: np.ndarray) -> str:
    for name, dtype in DTYPES.items():
        if dtype is not np.object_ and array.dtype == np.dtype(dtype):
            return name
    return "BYTES"


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    datatype = datatype_of(array)
    data = (
        array.reshape(-1).tolist() if datatype != "BYTES" else [str(x) for x in array.reshape(-1)]
    )
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}
