"""The protocol's gRPC service, inference.GRPCInferenceService, beside the REST server.

It runs in the REST server's event loop (started by the ASGI lifespan), so both
share one Runtime: one batcher, one inference thread, one monitor, one set of
metrics. Its requests go through the same checks as REST's (protocol.check_header,
check_values, matrix_of) and the same Runtime.infer, so feedback ids, quality,
drift and the request metrics count them alike. A bad request is INVALID_ARGUMENT
(or NOT_FOUND for another model), a client error; only a fault of the model or the
server is INTERNAL.

The messages and the service come from tritonclient's generated stubs: Triton's
service of the same name is a superset of the protocol's, with the same messages
and field numbers, so KServe's and MLServer's clients speak to it too; the methods
beyond the protocol's six answer UNIMPLEMENTED. Health checking (grpc.health.v1)
and server reflection are served on the same port.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, NoReturn

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from ciclo.serving import binary
from ciclo.serving.protocol import (
    ProtocolError,
    check_header,
    datatype_of,
    matrix_of,
    numbers,
    request_id_of,
    show,
)
from ciclo.serving.runtime import SERVER_VERSION, Hook, Runtime, server_metadata

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
"""Where each datatype's values go in InferTensorContents (FP16 has no field: raw only)."""
log = logging.getLogger("ciclo.serve")


class NotFound(Exception):
    """A request for a model (or version) this server does not serve."""


def decode_infer_request(
    request: Any, n_features: int | None
) -> tuple[np.ndarray, str | None, list[str] | None]:
    """protocol.decode_request for a ModelInferRequest: data from raw_input_contents (one
    entry per input, in order) or from each input's typed contents."""
    request_id = request_id_of(request.id)
    inputs = request.inputs
    if not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs: "
            "send one for each input, or none and each input's contents"
        )
    arrays = []
    for i, tensor in enumerate(inputs):
        shape = list(tensor.shape)
        name, size = check_header(tensor.name, shape, tensor.datatype)
        if raw:
            arrays.append(binary.from_bytes(raw[i], name, shape, tensor.datatype))
            continue
        field = CONTENTS.get(tensor.datatype)
        if field is None:
            raise ProtocolError(f"input {name}: {tensor.datatype} data goes in raw_input_contents")
        values = list(getattr(tensor.contents, field))
        if len(values) != size:
            raise ProtocolError(
                f"input {name}: shape {shape} needs {size} values, contents.{field} has "
                f"{len(values)}"
            )
        arrays.append(numbers(values, name, tensor.datatype).reshape(shape))
    wanted = [o.name for o in request.outputs] or None
    return matrix_of(arrays, n_features), request_id, wanted


def encode_infer_response(
    runtime: Runtime, request_id: str, outputs: list[tuple[str, np.ndarray]]
) -> Any:
    """A ModelInferResponse with each output's data in raw_output_contents."""
    response = pb.ModelInferResponse(
        model_name=runtime.name, model_version=runtime.version, id=request_id
    )
    for name, array in outputs:
        response.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        response.raw_output_contents.append(binary.to_bytes(array))
    return response


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """The protocol's six methods; the base class answers UNIMPLEMENTED to the rest."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:  # as Triton answers: a model not served here is not ready (clients expect a no)
            self._check_model(request.name, request.version)
        except NotFound:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(**server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        await self._model(request.name, request.version, context)
        metadata = self.runtime.metadata()
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**t) for t in metadata["inputs"]],
            outputs=[tensor(**t) for t in metadata["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        runtime = self.runtime
        assert runtime.metrics is not None  # set in Runtime.__post_init__
        start = time.perf_counter()
        outcome = "client_error"
        try:
            self._check_model(request.model_name, request.model_version)
            matrix, request_id, wanted = decode_infer_request(request, runtime.n_features)
            request_id = request_id or uuid.uuid4().hex
            outputs = await runtime.infer(matrix, request_id, wanted)
            response = encode_infer_response(runtime, request_id, outputs)
            outcome = "success"
            return response
        except ProtocolError as e:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except NotFound as e:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(e))
        except Exception as e:  # the model (or the server) failed: a server error, logged
            outcome = "server_error"
            log.exception("ModelInfer failed")
            first = str(e).splitlines()[0] if str(e) else ""
            await _abort(
                context, grpc.StatusCode.INTERNAL, f"inference failed: {type(e).__name__}: {first}"
            )
        finally:
            runtime.metrics.record(time.perf_counter() - start, outcome)

    async def _model(self, name: str, version: str, context: Any) -> None:
        try:
            self._check_model(name, version)
        except NotFound as e:
            await _abort(context, grpc.StatusCode.NOT_FOUND, str(e))

    def _check_model(self, name: str, version: str) -> None:
        """As REST's URL: this server's model, and its version when one is named."""
        runtime = self.runtime
        if name != runtime.name:
            raise NotFound(f"unknown model {show(name)}: this server serves {runtime.name!r}")
        if version and version != runtime.version:
            raise NotFound(
                f"unknown version {show(version)} of {name}: this server serves {runtime.version!r}"
            )


async def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returns only by raising")  # for the type checker


async def start(runtime: Runtime, host: str, port: int) -> grpc.aio.Server:
    """The gRPC server on host:port, started in the running event loop; a port taken is a
    RuntimeError naming it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", runtime.max_body),
            ("grpc.max_send_message_length", -1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(runtime), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    reflection.enable_server_reflection(
        (
            SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as e:
        raise RuntimeError(f"gRPC cannot listen on {address}: {e}") from None
    await server.start()
    for service in ("", SERVICE):
        await checks.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC (ciclo %s) on %s", SERVER_VERSION, address)
    return server


def hooks(runtime: Runtime, host: str, port: int) -> tuple[Hook, Hook]:
    """The ASGI lifespan's startup and shutdown that run the gRPC server beside REST."""
    running: list[grpc.aio.Server] = []

    async def startup() -> None:
        running.append(await start(runtime, host, port))

    async def shutdown() -> None:
        for server in running:
            await server.stop(grace=5)

    return startup, shutdown
