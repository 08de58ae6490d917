"""Structured logs for every Hydra process: API, controller, scheduler, workers, CLI.

``LOG_FORMAT=json`` writes one JSON object per line::

    {"ts": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "hydra.attempts",
     "message": "run ended", "component": "worker", "event": "run.ended",
     "job_id": "...", "run_id": "...", "worker": "cpu1@host", "status": "succeeded"}

``ts``, ``level``, ``logger``, ``message``, ``component``, ``event``, ``job_id``, ``run_id``
and ``worker`` are on every line (null when a line is about no job, run or worker); any
other ``extra={...}`` field of the call is added as is, and a traceback as ``exc``.
``LOG_FORMAT=text`` (the default) keeps the usual one-line text, with the same fields
appended as ``key=value``. ``LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) sets the level. Both are
settings (``hydra.settings``): read from the environment or from the settings file.

Who calls what:

* the API: :func:`configure` ``("api")`` in ``api.create_app``; gunicorn's own lines go
  through :class:`GunicornLogger` (``gunicorn.conf.py`` names it);
* ``hydra <command>`` (controller, scheduler, init-db, the client commands):
  :func:`configure` with the command's name as the component;
* Celery workers: Celery sets up its handlers, then the ``after_setup_logger`` /
  ``after_setup_task_logger`` signals connected below give them Hydra's formatter, so
  Celery's own lines ("Task ... received", "... ready.") come out in the same format.
  Inside a task, ``run_id`` and ``job_id`` are taken from the task being executed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_init

from hydra import names
from hydra.settings import Settings, SettingsError, get_settings

#: The keys every JSON line has, in this order.
CORE_KEYS = ("ts", "level", "logger", "message", "component", "event", "job_id", "run_id", "worker")
FORMATS = ("json", "text")

#: Attributes every LogRecord has; whatever else a record carries came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "task_id",
    "task_name",
    "data",
}
_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(component)s] %(name)s: %(message)s"

#: What this process is ("api", "controller", "worker", ...) and, in a worker, its node name.
_context = {"component": os.path.basename(sys.argv[0] or "python") or "python", "worker": None}


def _settings() -> Settings:
    """The settings (LOG_LEVEL, LOG_FORMAT: from the environment or the settings file); the
    defaults when they cannot be read - the error is reported where they are used, in words."""
    try:
        return get_settings()
    except SettingsError:
        return Settings()


def log_format() -> str:
    """``LOG_FORMAT`` (json or text; anything else is text)."""
    value = (_settings().log_format or "text").strip().lower()
    return value if value in FORMATS else "text"


def log_level(default: str = "INFO") -> int:
    """``LOG_LEVEL`` as a logging level (an unknown name means ``default``)."""
    value = (_settings().log_level or default).strip().upper()
    level = logging.getLevelName(value)
    return level if isinstance(level, int) else logging.getLevelName(default.upper())


def _current_task_ids() -> tuple[str | None, str | None]:
    """(run_id, job_id) of the ``hydra.run_command`` this thread executes, if any."""
    if "celery" not in sys.modules:
        return None, None
    from celery import current_task

    try:
        task = current_task._get_current_object()
    except Exception:  # noqa: BLE001 - no app, no task: not in a task
        return None, None
    if task is None or task.name != names.TASK_RUN_COMMAND or task.request.id is None:
        return None, None
    return task.request.id, (task.request.kwargs or {}).get("job_id")


def _is_hydra_task(name: object) -> bool:
    return isinstance(name, str) and (name == names.TASK_RUN_COMMAND or name.startswith("hydra: "))


def fields_of(record: logging.LogRecord) -> dict:
    """The structured fields of a record: the core keys (None when unknown) and its extras."""
    out = {
        "component": _context["component"],
        "event": getattr(record, "event", None),
        "job_id": getattr(record, "job_id", None),
        "run_id": getattr(record, "run_id", None),
        "worker": getattr(record, "worker", None) or _context["worker"],
    }
    if out["run_id"] is None:
        # Celery's own task lines ("Task hydra: nightly #1[<id>] received/succeeded": the
        # attempt's shadow name, hydra.dispatch.steps.shadow_name) pass the task id in a
        # dict of arguments; inside a task, the task knows its ids.
        args = record.args
        if isinstance(args, Mapping) and _is_hydra_task(args.get("name")) and args.get("id"):
            out["run_id"] = args["id"]
        else:
            run_id, job_id = _current_task_ids()
            out["run_id"] = run_id
            out["job_id"] = out["job_id"] or job_id
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and key not in out and not key.startswith("_"):
            out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        body.update(fields_of(record))
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> [<component>] <logger>: <message> key=value ...`` (fields that are set)."""

    def __init__(self, fmt: str = _TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        record.component = fields.pop("component")
        if not getattr(record, "worker", None):
            fields.pop("worker")  # a worker's own name on each of its lines is noise in text
        line = super().format(record)
        extras = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        if extras:
            first, sep, rest = line.partition("\n")
            line = f"{first} {extras}{sep}{rest}"
        return line


def formatter(fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if (fmt or log_format()) == "json" else TextFormatter()


class _HydraHandler(logging.StreamHandler):
    """The handler :func:`configure` installs (so that a second call can find and replace it)."""


def configure(
    component: str, *, level: str | int | None = None, fmt: str | None = None, stream=None
) -> logging.Handler:
    """Send this process's logs (root logger) to ``stream`` (stderr) in ``fmt`` (LOG_FORMAT).

    Idempotent: a second call replaces the handler the first one installed. Returns it.
    """
    _context["component"] = component
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _HydraHandler):
            root.removeHandler(old)
    handler = _HydraHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
    root.setLevel(level if isinstance(level, int) else log_level())
    return handler


# --- Celery workers ---------------------------------------------------------------------------


@celeryd_init.connect(weak=False)
def _worker_identity(sender=None, **_):
    """A worker's lines name the worker (its node name) and the component."""
    _context["component"] = "worker"
    _context["worker"] = sender


def _restyle(logger: logging.Logger) -> None:
    """Give the handlers Celery attached to ``logger`` Hydra's formatter (JSON mode only:
    in text mode Celery keeps its own familiar format)."""
    if log_format() != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
    if _settings().log_level:
        logger.setLevel(log_level())


@after_setup_logger.connect(weak=False)
def _celery_root_logger(logger=None, **_):
    if logger is not None:
        _restyle(logger)


@after_setup_task_logger.connect(weak=False)
def _celery_task_logger(logger=None, **_):
    if logger is not None:
        _restyle(logger)


# --- gunicorn ----------------------------------------------------------------------------------

try:
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # gunicorn is not installed where only workers run
    _GunicornBase = None

if _GunicornBase is not None:

    class GunicornLogger(_GunicornBase):
        """gunicorn's logger (master, workers, access log) in Hydra's format when
        ``LOG_FORMAT=json``; access lines get ``event: "http.request"``."""

        def setup(self, cfg):
            super().setup(cfg)
            _context["component"] = "api"
            if log_format() != "json":
                return
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

        def access(self, resp, req, environ, request_time):
            if log_format() != "json":
                return super().access(resp, req, environ, request_time)
            if not self.access_log_enabled:
                return
            atoms = self.atoms(resp, req, environ, request_time)
            try:
                self.access_log.info(
                    self.cfg.access_log_format,
                    self.atoms_wrapper_class(atoms),
                    extra={
                        "event": "http.request",
                        "method": atoms.get("m"),
                        "path": atoms.get("U"),
                        "status": atoms.get("s"),
                        "duration": request_time.total_seconds(),
                    },
                )
            except Exception:  # noqa: BLE001 - as gunicorn does: a bad log line is not fatal
                self.error("access log failed", exc_info=True)
