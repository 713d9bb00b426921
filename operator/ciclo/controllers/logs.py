"""The operator's log lines, as text or JSON, each naming the object it is about.

kopf formats its own handlers' lines (its object loggers carry a `k8s_ref`). Our work runs
on threads outside kopf's handlers: the Model work queue and the policy scheduler. `about`
names the object for the lines logged while it is worked on, and `ObjectFilter` gives those
lines the same `k8s_ref` kopf's are given, so both formats show it the same way: text as a
`[namespace/name]` prefix, JSON as an `object` field with `namespace` and `name`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Literal

import kopf

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

# The JSON key of the object a line is about, as kopf names it.
REFKEY = "object"

_about: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ciclo_log_object", default=None
)


@contextlib.contextmanager
def about(namespace: str, name: str, kind: str | None = None) -> Iterator[None]:
    """Lines logged in this block (on this thread) name this object."""
    ref = {"namespace": namespace, "name": name}
    if kind:
        ref["kind"] = kind
    token = _about.set(ref)
    try:
        yield
    finally:
        _about.reset(token)


class ObjectFilter(logging.Filter):
    """Gives a line logged inside `about` the object reference kopf's own lines carry."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = _about.get()
        if ref is not None and not hasattr(record, "k8s_ref"):
            record.k8s_ref = ref
        return True


class QuietSuccess(logging.Filter):
    """Drops kopf's `Handler '...' succeeded.` lines. Every handler of ours is an event
    handler, so the line came once per handler per watch event: 17 lines per Model brought
    up, a tenth of the operator's CPU at 1,000 Models, and nothing to read. Failures are
    logged as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        message = record.getMessage()
        return not (message.startswith("Handler ") and message.endswith(" succeeded."))


def configure(log_format: LogFormat, *, verbose: bool = False) -> None:
    """The root logger as kopf sets it up (its formatters), plus ObjectFilter on each handler
    and, unless verbose, QuietSuccess on kopf's object logger."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: not one of {', '.join(FORMATS)}")
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=log_format == "text",
        log_refkey=REFKEY,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ObjectFilter) for f in handler.filters):
            handler.addFilter(ObjectFilter())
    objects = logging.getLogger("kopf.objects")
    for f in [f for f in objects.filters if isinstance(f, QuietSuccess)]:
        objects.removeFilter(f)
    if not verbose:
        objects.addFilter(QuietSuccess())
