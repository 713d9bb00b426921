"""The model being served, as both protocols see it: REST (server) and gRPC (grpc_server)
share one Runtime, so one batcher, one inference thread, one monitor and one set of
metrics serve them both. build_runtime loads the model and wires monitoring and batching.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ciclo.drift.profile import Profile
from ciclo.serving.batching import Batcher
from ciclo.serving.loaders import Predictor, load, model_classes
from ciclo.serving.metrics import RuntimeMetrics
from ciclo.serving.monitor import Monitor, Settings
from ciclo.serving.protocol import ProtocolError, datatype_of, show
from ciclo.serving.store import SharedStore

SERVER_VERSION = "0.1.0"
EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions served: the server metadata lists them."""
Prediction = tuple[np.ndarray, np.ndarray | None]
TRIP_ROWS = 32
"""Without batching, rows of requests that go to the inference thread in one trip at most."""
Hook = Callable[[], Awaitable[None]]
"""What runs as the server starts or stops (in its event loop): gRPC's start and stop."""


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
