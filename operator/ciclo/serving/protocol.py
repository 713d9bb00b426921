"""Open Inference Protocol v2 tensors, pure: JSON request in, a matrix out, and back.

A request's inputs become one (rows, features) matrix: a single input of shape
[rows, features], or several inputs of shape [rows] or [rows, 1], one per
feature, stacked in the order given. Data is row-major, flat or nested.

Nothing a model cannot take gets through: every value must be a number in the
range of the declared datatype (and a float within FP32's, which is what tree
ensembles, XGBoost and ONNX models compute in), with at least one row. The body
is what orjson parsed, whose numbers are finite: it refuses NaN, Infinity and
literals that overflow a double, so a non-finite value can only come from a
string (refused: data must be numbers) or a narrowing cast (range-checked first).
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, NoReturn

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
FP32_MAX = float(np.finfo(np.float32).max)
FLOAT_MAX = {"FP16": float(np.finfo(np.float16).max), "FP32": FP32_MAX, "FP64": FP32_MAX}
"""The largest magnitude taken per float datatype: FP64 too is held to FP32's range."""
_SQUARED_MAX = {name: top * top for name, top in FLOAT_MAX.items()}
INT_RANGE = {
    name: (int(np.iinfo(DTYPES[name]).min), int(np.iinfo(DTYPES[name]).max))
    for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
} | {"BOOL": (0, 1)}
MAX_ID = 128
"""Longest request id, in characters."""
REQUEST_ID = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{MAX_ID - 2}}}[\x21-\x7e])?")
"""Printable ASCII without leading or trailing spaces: safe as the X-Request-Id header."""
_SHOWN = 40  # characters of a client's value quoted in an error message, at most
_lowest, _highest = np.minimum.reduce, np.maximum.reduce  # NaN-propagating, and cheaper
# than ndarray.min/max's wrappers on the small arrays of the hot path
# A sum of squares beyond a double is a value refused right after: no warning for it.
warnings.filterwarnings("ignore", "overflow encountered in dot", RuntimeWarning, __name__)


class ProtocolError(Exception):
    """A bad request: the message names what is wrong, for a 400 {"error": ...}."""


def show(value: Any) -> str:
    """A client's value in an error message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def request_id_of(value: Any, what: str = "'id'") -> str | None:
    """The caller's request id, checked (None when absent or empty): 1 to MAX_ID printable
    ASCII characters, no leading or trailing space; an integer stands for its digits."""
    if value is None or value == "":
        return None
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a string")
    if REQUEST_ID.fullmatch(value) is None:
        raise ProtocolError(
            f"{what} must be 1 to {MAX_ID} printable ASCII characters without leading or "
            f"trailing spaces, not {show(value)}"
        )
    return value


def _flatten(data: Any, depth: int) -> list[Any]:
    """Row-major values of `data`, nested at most `depth` levels (the shape's dimensions)."""
    if not isinstance(data, list):
        raise ProtocolError("'data' must be a list")
    values: list[Any] = data
    for _ in range(depth):
        if not values or not isinstance(values[0], list):
            break
        flat: list[Any] = []
        for row in values:
            if not isinstance(row, list):
                raise ProtocolError("'data' mixes lists and values at one level")
            flat.extend(row)
        values = flat
    return values


_NUMBERS = (int, float, bool)


def _exact(flat: list[Any], name: str, datatype: str, lo: float, hi: float) -> np.ndarray:
    """The slow path, value by value in Python: integers beyond 64 bits, floats for an
    integer datatype, or something that is not a number at all."""
    for v in flat:
        if type(v) not in _NUMBERS:
            raise ProtocolError(f"input {name}: data must be numbers, not {show(v)}")
    integral = datatype in INT_RANGE
    for v in flat:
        if integral and type(v) is float and not v.is_integer():
            raise ProtocolError(f"input {name}: {datatype} data must be integers, not {v!r}")
        if not lo <= v <= hi:
            raise ProtocolError(_out_of_range(name, datatype, v))
    return np.array([int(v) for v in flat] if integral else flat, dtype=DTYPES[datatype])


def _out_of_range(name: str, datatype: str, value: Any) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    if datatype in INT_RANGE:
        lo, hi = INT_RANGE[datatype]
        return f"input {name}: {show(value)} is out of range for {datatype} ({lo} to {hi})"
    top = FLOAT_MAX[datatype]
    if isinstance(value, float) and math.isnan(value):
        return f"input {name}: NaN is not a value a model can take"
    return f"input {name}: {show(value)} is out of range for {datatype} (magnitude at most {top:g})"


def numbers(flat: list[Any], name: str, datatype: str) -> np.ndarray:
    """`flat` as a 1-d array of `datatype`, or a ProtocolError naming the first bad value."""
    try:
        raw = np.asarray(flat)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        raise ProtocolError(f"input {name}: 'data' is not numbers nested as its shape") from None
    if raw.ndim != 1:
        raise ProtocolError(f"input {name}: 'data' is nested deeper than its shape")
    kind = raw.dtype.kind
    if datatype in INT_RANGE:
        lo, hi = INT_RANGE[datatype]
        if kind not in "biu":  # floats, or Python integers numpy has no type for
            return _exact(flat, name, datatype, lo, hi)
        if kind != "b" and (kind, datatype) not in (("i", "INT64"), ("u", "UINT64")):
            low, high = _lowest(raw), _highest(raw)
            if low < lo or high > hi:
                raise ProtocolError(_out_of_range(name, datatype, low if low < lo else high))
    else:
        top = FLOAT_MAX[datatype]
        if kind not in "biuf":
            return _exact(flat, name, datatype, -top, top)
        if kind == "f":
            _check_floats(raw, name, datatype)
        elif datatype == "FP16":  # integers: their square could wrap, so the extremes
            low, high = _lowest(raw), _highest(raw)
            if not (-top <= low and high <= top):
                raise ProtocolError(_out_of_range(name, datatype, low if not -top <= low else high))
    dtype = DTYPES[datatype]
    return raw if raw.dtype.type is dtype else raw.astype(dtype)


def decode_tensor(tensor: Any) -> np.ndarray:
    try:
        name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
        data = tensor["data"]
    except (KeyError, TypeError):
        _missing(tensor)
    name, size = check_header(name, shape, datatype)
    flat = _flatten(data, len(shape))
    if len(flat) != size:
        raise ProtocolError(
            f"input {name}: shape {shape} needs {size} values, data has {len(flat)}"
        )
    return numbers(flat, name, datatype).reshape(shape)


def check_header(name: Any, shape: Any, datatype: Any) -> tuple[str, int]:
    """A tensor's name as error messages quote it, and how many values its shape holds:
    a numeric datatype, and a shape of [rows, features] or [rows] with at least one row.
    Every encoding (JSON, binary, gRPC) checks its tensors here."""
    if type(name) is not str or len(name) > _SHOWN:
        if type(name) is not str:
            raise ProtocolError(f"input {show(name)}: 'name' must be a string") from None
        name = show(name)
    if type(datatype) is not str or datatype not in _NUMERIC:
        if datatype == "BYTES":
            raise ProtocolError(f"input {name}: BYTES inputs are not features this model can take")
        raise ProtocolError(
            f"input {name}: unknown datatype {show(datatype)} (one of {', '.join(DTYPES)})"
        )
    # the usual shapes first, without a loop; anything else is looked at closely
    ndim = len(shape) if type(shape) is list else 0
    if ndim == 2 and type(shape[0]) is int and type(shape[1]) is int:
        if shape[0] <= 0 or shape[1] <= 0:
            _bad_shape(name, shape)
        return name, shape[0] * shape[1]
    if ndim == 1 and type(shape[0]) is int and shape[0] > 0:
        return name, shape[0]
    _bad_shape(name, shape)


def check_values(array: np.ndarray, name: str, datatype: str) -> np.ndarray:
    """`array`, already of `datatype` (binary or gRPC data), held to the rules JSON numbers
    are: floats finite and within FLOAT_MAX, booleans 0 or 1."""
    if datatype in FLOAT_MAX:
        _check_floats(array.reshape(-1), name, datatype)
    elif datatype == "BOOL" and array.size and _highest(array.view(np.uint8).reshape(-1)) > 1:
        raise ProtocolError(f"input {name}: BOOL data must be bytes 0 or 1")
    return array


def _check_floats(raw: np.ndarray, name: str, datatype: str) -> None:
    """The sum of squares bounds every value, in one cheap pass; only when it does not fit
    (or is NaN) are the extremes looked at."""
    if (
        not float(raw.dot(raw)) <= _SQUARED_MAX[datatype]
    ):  # float: FP16/FP32 sums would overflow a cast
        top = FLOAT_MAX[datatype]
        low, high = _lowest(raw), _highest(raw)
        if not (-top <= low and high <= top):  # NaN fails both
            raise ProtocolError(_out_of_range(name, datatype, low if not -top <= low else high))


_NUMERIC = frozenset(DTYPES) - {"BYTES"}


def _missing(tensor: Any) -> NoReturn:
    """Raise the error of a tensor that is not an object with its four fields."""
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype, data")
    name = tensor.get("name", "?")
    name = name if isinstance(name, str) and len(name) <= _SHOWN else show(name)
    for field in ("name", "shape", "datatype", "data"):
        if field not in tensor:
            raise ProtocolError(f"input {name}: missing '{field}'")
    raise ProtocolError(f"input {name}: not a tensor")


def _bad_shape(name: str, shape: Any) -> NoReturn:
    """Raise the error naming what is wrong with a shape the fast path did not take."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ProtocolError(f"input {name}: shape must be a list of non-negative integers")
    if not 1 <= len(shape) <= 2:
        raise ProtocolError(f"input {name}: shape {show(shape)} must be [rows, features] or [rows]")
    if shape[0] == 0:
        raise ProtocolError(f"input {name}: shape {shape} has no rows: send at least one")
    raise ProtocolError(f"input {name}: shape {shape} has no features")


def decode_request(
    body: Any, n_features: int | None
) -> tuple[np.ndarray, str | None, list[str] | None]:
    """The feature matrix, the caller's request id if any, and the outputs asked for."""
    request_id, inputs, outputs = request_fields(body)
    return matrix_of([decode_tensor(t) for t in inputs], n_features), request_id, outputs


def request_fields(body: Any) -> tuple[str | None, list[Any], list[str] | None]:
    """A request's id (checked), its inputs (a non-empty list, not yet looked into) and
    the outputs it asks for."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object")
    request_id = body.get("id")
    if request_id is not None:
        request_id = request_id_of(request_id)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    outputs = body.get("outputs")
    return request_id, inputs, None if outputs is None else _outputs(outputs)


def matrix_of(arrays: list[np.ndarray], n_features: int | None) -> np.ndarray:
    """The (rows, features) matrix of a request's decoded inputs."""
    if len(arrays) == 1 and arrays[0].ndim == 2:
        matrix = arrays[0]
    elif all(a.ndim == 1 or a.shape[1] == 1 for a in arrays):
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
    return matrix


def _outputs(outputs: Any) -> list[str] | None:
    """The output names asked for; None (all of them) when the request names none."""
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise ProtocolError("'outputs' must be a list of objects with a 'name' string")
    return [o["name"] for o in outputs] or None


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
