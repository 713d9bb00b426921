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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import orjson

from ciclo.drift.profile import Profile
from ciclo.serving import binary
from ciclo.serving.batching import Batcher
from ciclo.serving.feedback import MALFORMED, FeedbackError, parse_feedback
from ciclo.serving.loaders import Predictor, load, model_classes
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor, Settings
from ciclo.serving.protocol import (
    ProtocolError,
    datatype_of,
    decode_request,
    encode_tensor,
    show,
)
from ciclo.serving.store import SharedStore, StoreUnavailable

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SERVER_VERSION = "0.1.0"
EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions served: the server metadata lists them."""
MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer|/feedback)?$")
METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
Prediction = tuple[np.ndarray, np.ndarray | None]
TRIP_ROWS = 32
"""Without batching, rows of requests that go to the inference thread in one trip at most."""
log = logging.getLogger("ciclo.serve")


class HttpError(Exception):
    def __init__(self, status: int, message: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow
        """For a 405: the methods the endpoint takes (the Allow header)."""


@dataclass
class Runtime:
    name: str
    version: str
    fmt: str
    predictor: Predictor
    max_body: int = 64 << 20
    outputs: list[str] = field(default_factory=lambda: ["predict", "predict_proba"])
    metrics: RuntimeMetrics | None = None
    monitor: Monitor | None = None
    max_batch_size: int = 1
    max_batch_delay: float = 0.0
    batcher: Batcher[Prediction] = field(init=False)

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = RuntimeMetrics(self.name, self.version)
        # One inference thread: more only fight over the GIL (the model libraries use the
        # cores themselves), and their fight is the tail latency of small models.
        executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        if self.max_batch_size > 1:
            run, rows = self.predict_batch, self.max_batch_size
        else:
            run, rows = self.predict_each, TRIP_ROWS
        self.batcher = Batcher(run, rows, self.max_batch_delay, executor)

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

    def predict(self, matrix: np.ndarray) -> Prediction:
        """Predictions and class probabilities (None when the model has none)."""
        return np.asarray(self.predictor.predict(matrix)), self.predictor.predict_proba(matrix)

    def predict_each(self, matrices: list[np.ndarray]) -> list[Prediction]:
        """Each request's own predict, in one trip to the inference thread."""
        if self.monitor is not None and self.monitor.due:  # in this thread, not the event loop's
            self.monitor.fold()
        return [self.predict(m) for m in matrices]

    def predict_batch(self, matrices: list[np.ndarray]) -> list[Prediction]:
        """One predict over many requests' rows, split back per request."""
        if self.monitor is not None and self.monitor.due:  # in this thread, not the event loop's
            self.monitor.fold()
        if len(matrices) == 1 or len({m.shape[1] for m in matrices}) > 1:
            return [self.predict(m) for m in matrices]
        predicted, proba = self.predict(np.concatenate(matrices))
        cuts = np.cumsum([m.shape[0] for m in matrices])[:-1]
        probas = np.split(proba, cuts) if proba is not None else [None] * len(matrices)
        return list(zip(np.split(predicted, cuts), probas, strict=True))

    @property
    def n_features(self) -> int | None:
        """Input columns: the model's, else the baseline profile's (drift needs as many)."""
        width = self.predictor.n_features
        if width is None and self.monitor is not None and self.monitor.drift is not None:
            width = self.monitor.drift.n_features
        return width

    async def infer(
        self, matrix: np.ndarray, request_id: str, wanted: list[str] | None
    ) -> list[tuple[str, np.ndarray]]:
        """The outputs asked for (all the model has when None), by name; every protocol's
        requests come here, so monitoring sees them all."""
        names = wanted or self.outputs
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise ProtocolError(
                f"unknown output {show(unknown[0])}: one of {', '.join(self.outputs)}"
            )
        predicted, proba = await self.batcher.submit(matrix)
        out: list[tuple[str, np.ndarray]] = []
        for name in names:
            value = predicted if name == "predict" else proba
            if value is None:
                if wanted:  # refused before anything is stored
                    raise ProtocolError(f"model {self.name} has no {name}")
                continue
            out.append((name, value))
        if self.monitor is not None:  # only a queue append: a later trip folds it
            self.monitor.observe(request_id, matrix, predicted, proba)
        return out


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


Hook = Callable[[], Awaitable[None]]


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


def server_metadata() -> dict[str, Any]:
    return {"name": "ciclo", "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


@dataclass(frozen=True)
class ServeOptions:
    max_body: int = 64 << 20
    monitoring: bool = True
    baseline: Path | None = None
    settings: Settings = field(default_factory=Settings)
    max_batch_size: int = 1
    max_batch_delay: float = 0.0
    feedback_store: str | None = None
    """A Valkey or Redis URL (redis://, rediss://, unix://): the store every pod of the
    Model shares; None keeps predictions in this process."""
    feedback_store_prefix: str | None = None
    """What the store's keys start with after `ciclo:`; the model's name when None."""


def build_runtime(model: Path, fmt: str, name: str, version: str, options: ServeOptions) -> Runtime:
    """Load the model (and the baseline profile), and wire monitoring and batching."""
    predictor = load(model, fmt)
    runtime = Runtime(
        name,
        version,
        fmt,
        predictor,
        max_body=options.max_body,
        max_batch_size=options.max_batch_size,
        max_batch_delay=options.max_batch_delay,
    )
    if options.monitoring:
        assert runtime.metrics is not None
        profile = Profile.load(options.baseline) if options.baseline else None
        classifier = is_classifier(predictor)
        store = None
        if options.feedback_store and classifier:
            store = SharedStore(
                options.feedback_store,
                options.feedback_store_prefix or name,
                version,
                options.settings.feedback_max_age,
                runtime.metrics.registry,
                runtime.metrics.labels,
            )
        runtime.monitor = Monitor(
            runtime.metrics,
            classifier,
            profile,
            options.settings,
            classes=model_classes(predictor) if classifier else None,
            store=store,
        )
        if store is not None:
            store.before_write = runtime.monitor.fold  # the writer folds, then writes
            store.start()
    return runtime


def is_classifier(predictor: Predictor) -> bool:
    """A model with class probabilities is a classifier: feedback and confusion apply."""
    if predictor.n_features is None:
        return False
    return predictor.predict_proba(np.zeros((1, predictor.n_features))) is not None


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
