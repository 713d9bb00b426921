"""The Open Inference Protocol v2 REST server that `ciclo serve` runs.

A plain ASGI application (no framework between uvicorn and the model: the hot
path is one regex, one orjson parse, one predict in a thread, one orjson dump).
Every response carries an id (the caller's, or a new one) that feedback can
quote later; every bad request is a 4xx with {"error": ...}; nothing a client
sends stops the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ciclo.serving.loaders import Predictor, load
from ciclo.serving.protocol import ProtocolError, datatype_of, decode_request, encode_tensor

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SERVER_VERSION = "0.1.0"
MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?$")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Runtime:
    name: str
    version: str
    fmt: str
    predictor: Predictor
    max_body: int = 64 << 20
    outputs: list[str] = field(default_factory=lambda: ["predict", "predict_proba"])

    def metadata(self) -> dict[str, Any]:
        width = self.predictor.n_features
        predicted = "FP64"
        if width is not None:  # one prediction on zeros tells the output's real datatype
            predicted = datatype_of(np.asarray(self.predictor.predict(np.zeros((1, width)))))
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.fmt,
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, width or -1]}],
            "outputs": [
                {"name": "predict", "datatype": predicted, "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]},
            ],
        }

    def infer(self, matrix: np.ndarray, wanted: list[str] | None) -> list[dict[str, Any]]:
        names = wanted or self.outputs
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise ProtocolError(f"unknown output {unknown[0]!r}: one of {', '.join(self.outputs)}")
        out = []
        for name in names:
            value = (
                self.predictor.predict(matrix)
                if name == "predict"
                else self.predictor.predict_proba(matrix)
            )
            if value is None:
                if wanted:
                    raise ProtocolError(f"model {self.name} has no {name}")
                continue
            out.append(encode_tensor(name, value))
        return out


async def _body(receive: Receive, limit: int, declared: int | None) -> bytes:
    if declared is not None and declared > limit:
        raise HttpError(413, f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, status: int, payload: Any, request_id: str | None = None) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(runtime: Runtime) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        request_id: str | None = None
        try:
            status, payload, request_id = await _route(runtime, scope, receive)
        except HttpError as e:
            status, payload = e.status, {"error": str(e)}
        except ProtocolError as e:
            status, payload = 400, {"error": str(e)}
        except Exception as e:  # the model failed on this input: the server goes on
            status, payload = 500, {"error": f"inference failed: {type(e).__name__}: {e}"}
        if request_id and isinstance(payload, dict):
            payload.setdefault("id", request_id)
        await _respond(send, status, payload, request_id)

    return app


async def _route(runtime: Runtime, scope: Scope, receive: Receive) -> tuple[int, Any, str | None]:
    method, path = scope["method"], scope["path"].rstrip("/") or "/"
    if path in ("/v2/health/live", "/v2/health/ready"):
        return 200, {"live" if path.endswith("live") else "ready": True}, None
    if path == "/v2":
        return 200, {"name": "ciclo", "version": SERVER_VERSION, "extensions": []}, None
    match = MODEL_PATH.match(path)
    if not match:
        raise HttpError(404, f"no such endpoint: {method} {path}")
    name, version, action = match.groups()
    if name != runtime.name:
        raise HttpError(404, f"unknown model {name!r}: this server serves {runtime.name!r}")
    if version is not None and version != runtime.version:
        raise HttpError(
            404, f"unknown version {version!r} of {name}: this server serves {runtime.version!r}"
        )
    if action in (None, "/ready"):
        if method != "GET":
            raise HttpError(405, f"{path} takes GET")
        if action == "/ready":
            return 200, {"name": name, "ready": True}, None
        return 200, runtime.metadata(), None
    if method != "POST":
        raise HttpError(405, f"{path} takes POST")
    headers = dict(scope.get("headers", []))
    declared = headers.get(b"content-length")
    raw = await _body(receive, runtime.max_body, int(declared) if declared else None)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"malformed JSON: {e}") from None
    matrix, request_id, wanted = decode_request(body, runtime.predictor.n_features)
    request_id = request_id or uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    outputs = await loop.run_in_executor(None, runtime.infer, matrix, wanted)
    return (
        200,
        {
            "model_name": runtime.name,
            "model_version": runtime.version,
            "id": request_id,
            "outputs": outputs,
        },
        request_id,
    )


def app_from_env() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """uvicorn's factory: each worker process loads the model from CICLO_SERVE_* variables."""
    fmt = os.environ["CICLO_SERVE_FORMAT"]
    predictor = load(Path(os.environ["CICLO_SERVE_MODEL"]), fmt)
    return create_app(
        Runtime(
            os.environ["CICLO_SERVE_NAME"],
            os.environ["CICLO_SERVE_VERSION"],
            fmt,
            predictor,
            max_body=int(os.environ.get("CICLO_SERVE_MAX_BODY", 64 << 20)),
        )
    )
