"""hydra.logs: JSON and text formatting, LOG_FORMAT / LOG_LEVEL."""

from __future__ import annotations

import io
import json
import logging

import pytest

from hydra import logs
from hydra.settings import CONFIG_VARIABLE, get_settings


@pytest.fixture
def capture(monkeypatch):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, dict(logs._context))
    stream = io.StringIO()

    def configure(component="api", **kw):
        logs.configure(component, stream=stream, **kw)
        return stream

    yield configure
    for handler in list(root.handlers):
        if isinstance(handler, logs._HydraHandler):
            root.removeHandler(handler)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logs._context.update(saved[2])


def test_json_lines_have_the_core_keys_and_the_extras(capture):
    stream = capture("controller", fmt="json", level="INFO")
    log = logging.getLogger("hydra.test")
    log.info("run %s ended", "r1", extra={"event": "run.ended", "run_id": "r1", "job_id": "j1", "status": "failed"})
    log.info("multi\nline")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    log.debug("hidden")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    first = lines[0]
    assert list(first)[: len(logs.CORE_KEYS)] == list(logs.CORE_KEYS)
    assert (
        first["message"],
        first["component"],
        first["event"],
        first["run_id"],
        first["job_id"],
        first["worker"],
        first["status"],
        first["level"],
        first["logger"],
    ) == ("run r1 ended", "controller", "run.ended", "r1", "j1", None, "failed", "INFO", "hydra.test")
    assert first["ts"].endswith("Z")
    assert lines[1]["message"] == "multi\nline" and lines[1]["event"] is None
    assert "ValueError: boom" in lines[2]["exc"]


def test_celery_task_lines_name_the_run(capture):
    stream = capture(fmt="json")
    logging.getLogger("celery.worker.strategy").info(
        "Task %(name)s[%(id)s] received", {"name": "hydra.run_command", "id": "abc"}
    )
    record = json.loads(stream.getvalue())
    assert record["run_id"] == "abc" and record["message"] == "Task hydra.run_command[abc] received"


def test_celery_task_lines_under_the_attempts_shadow_name_name_the_run(capture):
    stream = capture(fmt="json")
    logging.getLogger("celery.app.trace").info(
        "Task %(name)s[%(id)s] succeeded", {"name": "hydra: nightly #2", "id": "r2"}
    )
    record = json.loads(stream.getvalue())
    assert record["run_id"] == "r2" and record["message"] == "Task hydra: nightly #2[r2] succeeded"


def test_text_format_appends_the_fields_that_are_set(capture):
    stream = capture("api", fmt="text")
    logging.getLogger("x").warning("hello", extra={"event": "e.v", "run_id": "r9"})
    line = stream.getvalue().strip()
    assert line.endswith("WARNING [api] x: hello event=e.v run_id=r9") and "job_id" not in line


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_environment_chooses_format_and_level(capture, monkeypatch, fresh_settings):
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    stream = capture("api")
    logging.getLogger("x").info("quiet")
    logging.getLogger("x").warning("loud")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["loud"]
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    get_settings.cache_clear()
    assert logs.log_format() == "text"
    monkeypatch.setenv("LOG_LEVEL", "nonsense")
    get_settings.cache_clear()
    assert logs.log_level() == logging.INFO


def test_the_settings_file_chooses_format_and_level_too(monkeypatch, tmp_path, fresh_settings):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    path = tmp_path / "hydra.env"
    path.write_text("LOG_FORMAT=json\nLOG_LEVEL=error\n")
    path.chmod(0o600)
    monkeypatch.setenv(CONFIG_VARIABLE, str(path))
    assert (logs.log_format(), logs.log_level()) == ("json", logging.ERROR)
    monkeypatch.setenv("LOG_LEVEL", "debug")  # the environment wins over the file
    get_settings.cache_clear()
    assert logs.log_level() == logging.DEBUG


def test_unreadable_settings_leave_the_logs_at_their_defaults(monkeypatch, fresh_settings):
    monkeypatch.setenv("HYDRA_OUTPUT_LIMIT", "lots")
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert (logs.log_format(), logs.log_level()) == ("text", logging.INFO)


def test_configure_twice_keeps_one_handler(capture):
    capture(fmt="json")
    capture(fmt="json")
    assert sum(isinstance(h, logs._HydraHandler) for h in logging.getLogger().handlers) == 1
