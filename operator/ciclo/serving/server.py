"""The Open Inference Protocol v2 REST server that `ciclo serve` runs.

A plain ASGI application (no framework between uvicorn and the model: the hot
path is one regex, one orjson parse, one predict in a thread, one orjson dump).
Every response carries an id (the caller's, or a new one) that feedback can
quote later; every bad request is a 4xx with {"error": ...}, counted as a client
error, and checked before the model sees it or anything is stored; nothing a
client sends stops the server. Only a fault of the server or the model is a 5xx.
/metrics serves the runtime's Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from ciclo.serving import binary
from ciclo.serving.feedback import MALFORMED, FeedbackError, parse_feedback
from ciclo.serving.protocol import ProtocolError, decode_request, encode_tensor, show
from ciclo.serving.runtime import (
    Hook,
    Runtime,
    ServeOptions,
    build_runtime,
    server_metadata,
)
from ciclo.serving.store import SharedStore, StoreUnavailable

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer|/feedback)?$")
METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("ciclo.serve")


class HttpError(Exception):
    def __init__(self, status: int, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow
        """For a 405: the methods the endpoint takes (the Allow header)."""


async def _body(receive: Receive, limit: int, declared: bytes | None) -> bytes:
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if size > limit:
            raise HttpError(413, f"request body of {size} bytes exceeds the limit of {limit}")
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


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            found: bytes = value
            return found
    return None


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"malformed JSON: {e}") from None


@dataclass(frozen=True)
class BinaryBody:
    """A response of JSON then binary tensor data: the JSON's length goes in a header."""

    body: bytes
    json_length: int


async def _respond(
    send: Send,
    status: int,
    payload: Any,
    request_id: str | None = None,
    content_type: bytes = b"application/json",
    allow: str | None = None,
) -> None:
    json_length = None
    if isinstance(payload, BinaryBody):
        payload, json_length = payload.body, payload.json_length
        content_type = b"application/octet-stream"
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if json_length is not None:
        headers.append((binary.HEADER, str(json_length).encode()))
    if request_id:  # checked: printable ASCII (protocol.request_id_of)
        headers.append((b"x-request-id", request_id.encode()))
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app(
    runtime: Runtime, startup: Hook | None = None, shutdown: Hook | None = None
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app; `startup` and `shutdown` run in its event loop (the gRPC server's)."""
    metrics = runtime.metrics
    assert metrics is not None  # set in Runtime.__post_init__
    store = runtime.monitor.store if runtime.monitor is not None else None
    if isinstance(store, SharedStore):
        then = shutdown

        async def shutdown() -> None:
            if then is not None:
                await then()
            # a pod that stops writes what it has queued (a second at most), so its last
            # predictions can still be matched on another pod
            await asyncio.get_running_loop().run_in_executor(None, store.close)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, startup, shutdown)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            exposition = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition)
            await _respond(send, 200, exposition, content_type=METRICS_TYPE)
            return
        start = time.perf_counter()
        request_id: str | None = None
        allow: str | None = None
        try:
            status, payload, request_id = await _route(runtime, scope, receive)
        except HttpError as e:
            status, payload, allow = e.status, {"error": str(e)}, e.allow
        except (ProtocolError, FeedbackError) as e:
            status, payload = 400, {"error": str(e)}
        except Exception as e:  # the model (or the server) failed: a server error, logged
            log.exception("%s %s failed", scope["method"], scope["path"])
            first = str(e).splitlines()[0] if str(e) else ""
            status, payload = 500, {"error": f"inference failed: {type(e).__name__}: {first}"}
        if request_id and isinstance(payload, dict):
            payload.setdefault("id", request_id)
        await _respond(send, status, payload, request_id, allow=allow)
        if scope["path"].endswith("/infer"):
            outcome = (
                "success" if status < 400 else "client_error" if status < 500 else "server_error"
            )
            metrics.record(time.perf_counter() - start, outcome)

    return app


async def _lifespan(
    receive: Receive, send: Send, startup: Hook | None, shutdown: Hook | None
) -> None:
    while True:
        kind = (await receive())["type"]
        if kind == "lifespan.startup":
            try:
                if startup is not None:
                    await startup()
            except Exception as e:  # a port taken: uvicorn stops, saying why
                await send({"type": "lifespan.startup.failed", "message": str(e)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _takes(method: str, allowed: str, path: str) -> None:
    if method != allowed:
        _wrong_method(method, allowed, path)


def _wrong_method(method: str, allowed: str, path: str) -> NoReturn:
    raise HttpError(405, f"{show(path)} takes {allowed}, not {show(method)}", allowed)


async def _route(runtime: Runtime, scope: Scope, receive: Receive) -> tuple[int, Any, str | None]:
    method, path = scope["method"], scope["path"].rstrip("/") or "/"
    if path == "/metrics":  # a GET of /metrics itself is answered before it gets here
        _takes(method, "GET", path)
        raise HttpError(404, f"no such endpoint: {show(method)} {show(scope['path'])}")
    if path in ("/v2/health/live", "/v2/health/ready", "/v2"):
        _takes(method, "GET", path)
        if path == "/v2":
            return 200, server_metadata(), None
        return 200, {"live" if path.endswith("live") else "ready": True}, None
    match = MODEL_PATH.match(path)
    if not match:
        raise HttpError(404, f"no such endpoint: {show(method)} {show(path)}")
    name, version, action = match.groups()
    if name != runtime.name:
        raise HttpError(404, f"unknown model {show(name)}: this server serves {runtime.name!r}")
    if version is not None and version != runtime.version:
        raise HttpError(
            404,
            f"unknown version {show(version)} of {name}: this server serves {runtime.version!r}",
        )
    if action in (None, "/ready"):
        _takes(method, "GET", path)
        if action == "/ready":
            return 200, {"name": name, "ready": True}, None
        return 200, runtime.metadata(), None
    if method != "POST":
        _wrong_method(method, "POST", path)
    if action == "/feedback":
        if runtime.monitor is None:
            raise HttpError(404, "feedback is off: this server runs with --no-monitoring")
        monitor = runtime.monitor
        try:
            body = _parse(await _body(receive, runtime.max_body, _header(scope, b"content-length")))
            labels = parse_feedback(body)
            if monitor.store.remote:  # network I/O: never on the event loop
                loop = asyncio.get_running_loop()
                matched, late = await loop.run_in_executor(None, monitor.feedback, labels)
            else:
                matched, late = monitor.feedback(labels)
        except (HttpError, ProtocolError, FeedbackError) as e:
            assert runtime.metrics is not None
            runtime.metrics.feedback_rejected[getattr(e, "reason", MALFORMED)].inc()
            raise
        except StoreUnavailable as e:  # nothing was taken: the client may send it again
            raise HttpError(503, str(e)) from None
        return 200, {"matched": matched, "late": late}, None
    raw = await _body(receive, runtime.max_body, _header(scope, b"content-length"))
    json_length = _header(scope, binary.HEADER)
    if json_length is None:
        body = _parse(raw)
        matrix, request_id, wanted = decode_request(body, runtime.n_features)
    else:
        head, blob = binary.split(raw, json_length)
        body = _parse(head)
        matrix, request_id, wanted = binary.decode_request(body, blob, runtime.n_features)
    request_id = request_id or uuid.uuid4().hex
    outputs = await runtime.infer(matrix, request_id, wanted)
    payload: dict[str, Any] = {
        "model_name": runtime.name,
        "model_version": runtime.version,
        "id": request_id,
    }
    as_binary = binary.binary_outputs(body, [name for name, _ in outputs])
    if as_binary:
        return 200, BinaryBody(*binary.encode_response(payload, outputs, as_binary)), request_id
    payload["outputs"] = [encode_tensor(name, value) for name, value in outputs]
    return 200, payload, request_id


def app_from_env() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """uvicorn's factory: each worker process loads the model from CICLO_SERVE_* variables.

    Only without monitoring: each process would keep its own predictions and
    windows, so feedback and /metrics would see one process's share."""
    options = ServeOptions(
        max_body=int(os.environ.get("CICLO_SERVE_MAX_BODY", 64 << 20)),
        monitoring=False,
        max_batch_size=int(os.environ.get("CICLO_SERVE_MAX_BATCH_SIZE", 1)),
        max_batch_delay=float(os.environ.get("CICLO_SERVE_MAX_BATCH_DELAY", 0)),
    )
    runtime = build_runtime(
        Path(os.environ["CICLO_SERVE_MODEL"]),
        os.environ["CICLO_SERVE_FORMAT"],
        os.environ["CICLO_SERVE_NAME"],
        os.environ["CICLO_SERVE_VERSION"],
        options,
    )
    grpc_port = int(os.environ.get("CICLO_SERVE_GRPC_PORT", 0))
    if not grpc_port:
        return create_app(runtime)
    # each worker serves gRPC on the same port too: gRPC listens with SO_REUSEPORT
    from ciclo.serving import grpc_server

    host = os.environ.get("CICLO_SERVE_HOST", "0.0.0.0")
    return create_app(runtime, *grpc_server.hooks(runtime, host, grpc_port))
