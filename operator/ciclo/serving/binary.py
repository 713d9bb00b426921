"""The protocol's binary tensor data extension, pure: raw little-endian tensors beside JSON.

A request whose `Inference-Header-Content-Length` header is set is that many bytes
of JSON followed by the inputs' data, back to back, each input that carries a
`binary_data_size` parameter taking that many bytes in the order the inputs are
listed. An output goes back the same way when its `binary_data` parameter (or the
request's `binary_data_output`) asks for it. Numbers are little-endian, BOOL one
byte each, BYTES a 4-byte little-endian length before each element. gRPC's
`raw_input_contents` and `raw_output_contents` are the same bytes, so gRPC decodes
and encodes tensors here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ciclo.serving.protocol import (
    DTYPES,
    ProtocolError,
    check_header,
    check_values,
    datatype_of,
    decode_tensor,
    encode_tensor,
    matrix_of,
    request_fields,
    show,
)

HEADER = b"inference-header-content-length"
LITTLE = {name: np.dtype(t).newbyteorder("<") for name, t in DTYPES.items() if name != "BYTES"}
"""Each numeric datatype's wire dtype (little-endian, whatever this machine is)."""
_LENGTH = np.dtype("<u4")


def split(raw: bytes, declared: bytes) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data of a body, by its Inference-Header-Content-Length."""
    try:
        length = int(declared)
    except ValueError:
        raise ProtocolError(
            f"Inference-Header-Content-Length must be a number of bytes, not {show(declared)}"
        ) from None
    if not 0 < length <= len(raw):
        raise ProtocolError(
            f"Inference-Header-Content-Length is {length}, the body has {len(raw)} bytes: "
            "it must count the JSON before the binary data"
        )
    return raw[:length], memoryview(raw)[length:]


def decode_request(
    body: Any, blob: memoryview, n_features: int | None
) -> tuple[np.ndarray, str | None, list[str] | None]:
    """protocol.decode_request for a body with binary data: an input with binary_data_size
    takes its data from `blob`, the others from their JSON 'data'."""
    request_id, inputs, outputs = request_fields(body)
    arrays, offset = [], 0
    for tensor in inputs:
        size = _binary_size(tensor)
        if size is None:
            arrays.append(decode_tensor(tensor))
            continue
        name, shape, datatype = _header_of(tensor)
        if offset + size > len(blob):
            raise ProtocolError(
                f"input {name}: binary_data_size {size} runs past the end of the binary data "
                f"({len(blob) - offset} bytes left)"
            )
        arrays.append(from_bytes(blob[offset : offset + size], name, shape, datatype))
        offset += size
    if offset != len(blob):
        raise ProtocolError(
            f"the binary data has {len(blob) - offset} bytes beyond what the inputs' "
            "binary_data_size parameters take"
        )
    return matrix_of(arrays, n_features), request_id, outputs


def _binary_size(tensor: Any) -> int | None:
    """An input's binary_data_size, or None when its data is JSON."""
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    name = tensor.get("name")
    shown = name if isinstance(name, str) and len(name) <= 40 else show(name)
    if type(size) is not int or size < 0:
        raise ProtocolError(
            f"input {shown}: binary_data_size must be a non-negative integer, not {show(size)}"
        )
    if "data" in tensor:
        raise ProtocolError(f"input {shown}: has both 'data' and binary_data_size: send one")
    return size


def _header_of(tensor: dict[str, Any]) -> tuple[str, list[int], str]:
    for field in ("name", "shape", "datatype"):
        if field not in tensor:
            raise ProtocolError(f"input {show(tensor.get('name', '?'))}: missing '{field}'")
    name, _ = check_header(tensor["name"], tensor["shape"], tensor["datatype"])
    return name, tensor["shape"], tensor["datatype"]


def from_bytes(data: memoryview | bytes, name: str, shape: list[int], datatype: str) -> np.ndarray:
    """A checked (shape, datatype) array of raw tensor bytes; the header is checked already."""
    wire = LITTLE[datatype]
    count = int(np.prod(shape))
    if len(data) != count * wire.itemsize:
        raise ProtocolError(
            f"input {name}: shape {shape} of {datatype} takes {count * wire.itemsize} bytes, "
            f"not {len(data)}"
        )
    array = np.frombuffer(data, dtype=wire).reshape(shape)
    return check_values(array, name, datatype)


def to_bytes(array: np.ndarray) -> bytes:
    """An output's raw bytes: little-endian numbers, or length-prefixed BYTES elements."""
    datatype = datatype_of(array)
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=LITTLE[datatype]).tobytes()
    parts: list[bytes] = []
    for element in array.reshape(-1):
        raw = element if isinstance(element, bytes) else str(element).encode()
        parts += (np.array(len(raw), dtype=_LENGTH).tobytes(), raw)
    return b"".join(parts)


def binary_outputs(body: dict[str, Any], names: list[str]) -> set[str]:
    """The outputs to send as binary data: each output's own binary_data parameter, else
    the request's binary_data_output."""
    parameters = body.get("parameters")
    default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    chosen = {n for n in names if default}
    for output in body.get("outputs") or ():
        own = output.get("parameters")
        if isinstance(own, dict) and "binary_data" in own:
            if own["binary_data"] is True:
                chosen.add(output["name"])
            else:
                chosen.discard(output["name"])
    return chosen


def encode_response(
    payload: dict[str, Any], outputs: list[tuple[str, np.ndarray]], binary: set[str]
) -> tuple[bytes, int]:
    """The response body, JSON then the binary outputs' data, and the JSON's length."""
    tensors, blobs = [], []
    for name, array in outputs:
        if name not in binary:
            tensors.append(encode_tensor(name, array))
            continue
        raw = to_bytes(array)
        blobs.append(raw)
        tensors.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype_of(array),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
    header = orjson.dumps({**payload, "outputs": tensors})
    return b"".join([header, *blobs]), len(header)
