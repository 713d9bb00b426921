"""Start the operator: kopf's settings, the handlers, the metrics server, the resync loop."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from typing import Any

import kopf

from ciclo.config import Config
from ciclo.controllers import cache, logs, metrics, model, modelversion, monitorpolicy, training
from ciclo.controllers.cache import CachedKube
from ciclo.kube.client import Kube, load_client

log = logging.getLogger(__name__)


def configure(settings: kopf.OperatorSettings, config: Config) -> None:
    """kopf's settings, each chosen on purpose."""
    # ciclo posts its own Events for every transition; kopf's handler logs as Events would be noise.
    settings.posting.level = logging.WARNING
    # Restart watches every few minutes: a silently dead TCP connection cannot stall us for long.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    # Handlers are synchronous (the kubernetes client is) but short: they queue work, and the
    # registry's own writes are small. Reconciles run on the work queue's threads.
    settings.execution.max_workers = config.workers
    # Persistence is left alone on purpose: only event handlers are used, which keep no
    # progress or diff-base, so kopf writes no annotations of its own on users' objects.
    # One replica by default (the chart's Recreate strategy); more replicas agree through
    # kopf's peering so that only one acts at a time. Peers of equal priority would all
    # pause, so each replica draws its own: the highest acts, the others stand by until
    # its heartbeat lapses.
    peering = os.environ.get("CICLO_PEERING")
    if peering:
        settings.peering.name = peering
        settings.peering.mandatory = True
        settings.peering.clusterwide = True
        settings.peering.priority = random.randint(1, 2**31 - 1)
    else:
        settings.peering.standalone = True


def run(
    config: Config,
    kubeconfig: str | None,
    log_format: logs.LogFormat,
    verbose: bool,
    health_port: int,
) -> None:
    """`ciclo run`: the operator in this process until it is stopped."""
    setup(config, kubeconfig)
    logs.configure(log_format, verbose=verbose)
    # kopf's peering identity, named here (kopf reads POD_ID), so that kopf need not look
    # its host up in DNS: a reverse lookup that, where the resolver does not answer, held a
    # restarted operator back for 10 s before it handled anything.
    os.environ.setdefault("POD_ID", f"{socket.gethostname()}/{os.getpid()}")
    kopf.run(
        clusterwide=not config.namespaces,
        namespaces=config.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
    )


def setup(config: Config, kubeconfig: str | None = None) -> Kube:
    kube = CachedKube(Kube(load_client(kubeconfig)))
    cache.register(kube)
    queue = model.register(kube, config)
    modelversion.register(kube, queue)
    monitorpolicy.register(kube, config)
    trainer = training.register(kube, config)

    @kopf.on.startup()
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, config)
        metrics.serve(config.metrics_port)
        asyncio.get_running_loop().create_task(resync(kube, config, queue, trainer))

    return kube


async def resync(
    kube: Kube, config: Config, queue: model.Queue, trainer: training.Queue | None = None
) -> None:
    """Queue every Model now and then, jittered, off the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(config.resync_seconds * random.uniform(0.9, 1.1))
        try:
            await loop.run_in_executor(None, model.resync_all, kube, queue, config.namespaces)
            if trainer is not None:
                await loop.run_in_executor(
                    None, training.resync_all, kube, trainer, config.namespaces
                )
            for namespace in config.namespaces or (None,):
                await loop.run_in_executor(None, modelversion.release_deleted, kube, namespace)
        except Exception:
            log.exception("resync")
