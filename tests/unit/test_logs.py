"""`ciclo run --log-format`: kopf's formatters, and our own lines naming their object."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from ciclo.cli.main import build_parser
from ciclo.controllers import logs
from ciclo.controllers.workqueue import WorkQueue


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root handler kopf installs, writing into a buffer; the root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def configure(log_format: logs.LogFormat, out: io.StringIO) -> None:
    logs.configure(log_format)
    (kopf_handler,) = [h for h in logging.getLogger().handlers if "Kopf" in type(h).__name__]
    assert any(isinstance(f, logs.ObjectFilter) for f in kopf_handler.filters)
    assert isinstance(kopf_handler, logging.StreamHandler)
    kopf_handler.setStream(out)


def test_json_lines_name_the_object_they_are_about(captured: io.StringIO) -> None:
    configure("json", captured)
    log = logging.getLogger("ciclo.controllers.model")
    with logs.about("team-a", "iris", kind="MonitorPolicy"):
        log.warning("rule %s breaches", "accuracy")
    log.info("not about any object")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["message"] == "rule accuracy breaches"
    assert first["object"] == {"namespace": "team-a", "name": "iris", "kind": "MonitorPolicy"}
    assert first["severity"] == "warn"
    assert "object" not in second


def test_text_lines_are_prefixed_with_namespace_and_name(captured: io.StringIO) -> None:
    configure("text", captured)
    with logs.about("team-a", "iris"):
        logging.getLogger("ciclo.controllers.model").warning("service removed")
    (line,) = captured.getvalue().splitlines()
    assert line.endswith("[team-a/iris] service removed")
    assert "[WARNING ]" in line


def test_kopf_s_own_object_lines_keep_their_reference(captured: io.StringIO) -> None:
    configure("json", captured)
    kopf_ref = {"kind": "Model", "namespace": "ns", "name": "m", "uid": "u1"}
    with logs.about("other", "thing"):
        logging.getLogger("kopf.objects").warning("handler failed", extra={"k8s_ref": kopf_ref})
    assert json.loads(captured.getvalue())["object"] == kopf_ref


def test_kopf_s_handler_succeeded_lines_are_dropped_unless_verbose(captured: io.StringIO) -> None:
    ref = {"extra": {"k8s_ref": {"kind": "Model", "namespace": "ns", "name": "m"}}}
    objects = logging.getLogger("kopf.objects")

    def handled() -> list[str]:
        objects.info("Handler 'register.<locals>.model_event' succeeded.", **ref)  # type: ignore[arg-type]
        objects.error("Handler 'register.<locals>.model_event' failed with an exception.", **ref)  # type: ignore[arg-type]
        lines = [json.loads(line)["message"] for line in captured.getvalue().splitlines()]
        captured.seek(0)
        captured.truncate()
        return lines

    configure("json", captured)
    assert handled() == ["Handler 'register.<locals>.model_event' failed with an exception."]
    logs.configure("json", verbose=True)
    (kopf_handler,) = [h for h in logging.getLogger().handlers if "Kopf" in type(h).__name__]
    assert isinstance(kopf_handler, logging.StreamHandler)
    kopf_handler.setStream(captured)
    assert len(handled()) == 2, "--verbose keeps them"
    logs.configure("json")


def test_the_work_queue_names_the_model_its_work_is_about(captured: io.StringIO) -> None:
    configure("json", captured)
    done = threading.Event()

    def work(key: tuple[str, str]) -> None:
        logging.getLogger("ciclo.controllers.model").warning("reconciled")
        done.set()

    WorkQueue(work, workers=1).add(("prod", "fraud"))
    assert done.wait(10)
    record = json.loads(captured.getvalue().splitlines()[0])
    assert record["object"] == {"namespace": "prod", "name": "fraud"}


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of text, json"):
        logs.configure("xml")  # type: ignore[arg-type]


def test_run_takes_the_format_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert build_parser().parse_args(["run"]).log_format == "text"
    assert build_parser().parse_args(["run", "--log-format", "json"]).log_format == "json"
    monkeypatch.setenv("CICLO_LOG_FORMAT", "json")
    assert build_parser().parse_args(["run"]).log_format == "json"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--log-format", "yaml"])
