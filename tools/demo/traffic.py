"""The demo's users: inference requests through the Service's endpoints, and the true labels
sent back a moment later to the pod that answered.

Two knobs tell the story: `wrong_labels` makes a share of the labels for one
version disagree with its predictions' truth (that version's quality falls), and
`shift` moves one input feature (the input distribution drifts).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

ROWS_PER_REQUEST = 10
REQUESTS_PER_SECOND = 20
LABEL_DELAY = 1.0
"""Seconds before a request's labels are sent: ground truth arrives late."""


@dataclass
class Knobs:
    wrong_labels: dict[str, float] = field(default_factory=dict)
    """version -> share of its labels that are wrong."""
    shift: tuple[int, float] | None = None
    """(feature column, amount added)."""


@dataclass
class Counts:
    requests: int = 0
    errors: int = 0
    labels: int = 0
    by_version: dict[str, int] = field(default_factory=dict)


class Traffic:
    """Background threads: one sends requests, one sends the labels they are owed."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        endpoints: Callable[[], list[str]],
        model: str,
        seed: int = 1,
        through_service: bool = False,
    ) -> None:
        self.x, self.y = x, y
        self.endpoints = endpoints
        self.model = model
        # Labels go where the Service sends them now (any pod, any version: the shared
        # prediction store matches them), instead of back to the pod that answered.
        self.through_service = through_service
        self.addresses: list[str] = []
        self.rng = np.random.default_rng(seed)
        self.knobs = Knobs()
        self.counts = Counts()
        self.pending: deque[tuple[float, str, str, list[int]]] = deque()
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._requests, name="demo-requests", daemon=True),
            threading.Thread(target=self._labels, name="demo-labels", daemon=True),
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(10)

    def _requests(self) -> None:
        with httpx.Client(timeout=5) as client:
            addresses: list[str] = []
            refreshed = 0.0
            n = 0
            while not self.stop_event.is_set():
                if time.monotonic() - refreshed > 1:  # follow the Service as it switches
                    addresses, refreshed = self.endpoints(), time.monotonic()
                    self.addresses = addresses
                if not addresses:
                    time.sleep(0.2)
                    continue
                address = addresses[n % len(addresses)]
                n += 1
                rows = self.rng.integers(0, len(self.x), ROWS_PER_REQUEST)
                batch = self.x[rows].copy()
                if self.knobs.shift is not None:
                    column, amount = self.knobs.shift
                    batch[:, column] += amount
                body = {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": list(batch.shape),
                            "datatype": "FP64",
                            "data": batch.tolist(),
                        }
                    ]
                }
                try:
                    response = client.post(
                        f"http://{address}/v2/models/{self.model}/infer", json=body
                    )
                    answer = response.json()
                    response.raise_for_status()
                except (httpx.HTTPError, ValueError):
                    self.counts.errors += 1
                    time.sleep(0.2)
                    continue
                version = str(answer["model_version"])
                self.counts.requests += 1
                self.counts.by_version[version] = self.counts.by_version.get(version, 0) + 1
                labels = self.y[rows].copy()
                wrong = self.knobs.wrong_labels.get(version, 0.0)
                if wrong:
                    flip = self.rng.random(len(labels)) < wrong
                    labels[flip] = (labels[flip] + 1) % 3
                due = time.monotonic() + LABEL_DELAY
                self.pending.append((due, address, str(answer["id"]), labels.tolist()))
                time.sleep(1 / REQUESTS_PER_SECOND)

    def _labels(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop_event.is_set():
                if not self.pending or self.pending[0][0] > time.monotonic():
                    time.sleep(0.1)
                    continue
                _, address, request_id, labels = self.pending.popleft()
                now = self.addresses
                if self.through_service and now:
                    address = now[int(self.rng.integers(len(now)))]
                try:
                    client.post(
                        f"http://{address}/v2/models/{self.model}/feedback",
                        json={"id": request_id, "labels": labels},
                    ).raise_for_status()
                    self.counts.labels += len(labels)
                except httpx.HTTPError:
                    pass  # without the shared store: the pod went away, its labels with it
