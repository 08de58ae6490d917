"""The API's own documentation: OpenAPI 3 at ``/openapi.json``, Swagger UI at ``/docs``.

* **Offline.** Swagger UI's files come from the ``flask-swagger-ui`` package (pinned in
  requirements.txt) and are served by the API itself at ``/docs/assets/``: the docs work on
  machines without internet access.
* **Every error response documented.** :class:`ErrorResponses` (an apispec plugin) gives
  every operation the error answers it can give, each with the one error schema
  ``{code, status, message, errors}``: 500 and 503 (Retry-After) everywhere, 400 and 413
  where there is a JSON body, 404 where a path names a resource; described error answers that
  a view declared without a schema get it. There is no catch-all ``default`` response,
  so a status an operation does not list is a bug the schemathesis run finds.
* **Every field described.** Schema fields and query parameters without a ``description``
  get one from :data:`FIELD_DOCS` / :data:`PARAM_DOCS` (tests/unit/test_openapi_doc.py
  checks that none is left without).
"""

from __future__ import annotations

import re
from pathlib import Path

from apispec import BasePlugin
from flask import Flask, send_from_directory
from flask_smorest import Api
from flask_smorest.error_handler import ErrorSchema

from api import auth
from hydra.model import spec as spec_fields

#: Where flask-swagger-ui keeps Swagger UI's distribution files.
SWAGGER_UI_ASSETS = Path(__import__("flask_swagger_ui").__file__).resolve().parent / "dist"

DESCRIPTION = """\
Hydra runs shell commands on a fleet of Celery workers chosen by affinity (OS, tags, allowed
users, load) and records every run in MongoDB.

Submit a job with `POST /jobs/`; follow its run with `GET /runs/{run_id}` and its live output
with `GET /runs/{run_id}/output?after=<next>&wait=10`, or download it with
`GET /runs/{run_id}/output.txt`. A job that declares `params` is triggered with values:
`POST /jobs/{job_id}/trigger {"params": {"TARGET": "prod"}}`. Errors always have the body
`{code, status, message, errors}`; `errors.json` names each invalid field of a body,
`errors.query` each invalid query parameter and `errors.path` an invalid path parameter.

A job can start other jobs when its runs end: its `on_success`, `on_failure` and
`on_completion` name them by id (`GET /jobs/{job_id}/dependencies` shows both ends, and
`GET /runs/{run_id}/flow` what started a run and what its end started). Python programs
holding an API token publish Celery tasks and canvases (`chain`, `group`, `chord`, `link`,
`link_error`) with `POST /tasks/`, as the token's user.

A job's `notify` (or, for its jobs that name none, a namespace's: `PUT /namespaces/{namespace}`)
names webhook and Slack targets for the events `failed`, `dead_letter`, `lost`, `succeeded` and
`recovered`. A webhook's body is signed: `X-Hydra-Signature: sha256=<hex>` is HMAC-SHA256, keyed
with its secret, of `<X-Hydra-Timestamp>.<body>`. `GET /runs/{run_id}` shows each delivery and
its attempts in `notifications`; secrets read `<redacted>`.

Request limits: a request line (method, path, query and version) of at most 4094 bytes (414
beyond), at most 100 header fields of at most 8190 bytes each, name and value (431 beyond), and
a body of at most 2 MiB (413 beyond); each answered in the same error shape.
"""

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_STANDARD = {
    "400": "The body is not valid JSON.",
    "401": "No credentials, or credentials that prove nothing (`WWW-Authenticate` says how to send them).",
    "403": "The caller's roles do not allow this in the namespace concerned.",
    "404": "Nothing with that id.",
    "413": "The body is larger than the API accepts (2 MiB).",
    "414": "The request line (method, path, query and version) is longer than 4094 bytes.",
    "431": "More than 100 header fields, or one (name and value) longer than 8190 bytes.",
    "500": "Unexpected server error (logged with its traceback).",
    "503": "A service Hydra needs (MongoDB or Redis) is unavailable; try again after `Retry-After` seconds.",
}

#: Descriptions of fields whose schema gives none: schema name -> field -> text ("*": any schema).
FIELD_DOCS: dict[str, dict[str, str]] = {
    "*": {
        "run_id": "The run (attempt) id, also the Celery task id.",
        "worker_id": "The worker (Celery node name) it was placed on or ran on.",
        "started_at": "When a worker started it.",
        "returncode": "Exit status (an http run: the response status); null when it never ran.",
        "stdout": "Captured standard output (capped; the cut is marked).",
        "stderr": "Captured standard error (capped; the cut is marked).",
        "error": "Why it failed, besides its exit status.",
        "executor": "shell or http.",
        "http": "The request of an http job.",
        "backoff": "Retry delays (base, factor, cap, jitter).",
        "max_lost": "Lost attempts before the run is dead-lettered.",
        "misfire": "Missed cron ticks: skip or run_once.",
        "overlap": "A cron tick while a run is active: allow, forbid or queue.",
        "paused_at": "When its schedule was paused (null: not paused).",
        "cancel_requested_at": "When a cancel was asked for (the worker is stopping it).",
        "id": "Unique id (a UUID).",
        "job_id": "The job this belongs to.",
        "name": "Name of the job, for people.",
        "user": "User the job runs for (checked against workers' allowed users).",
        "namespace": "The namespace it belongs to.",
        "command": "The command line (run under `shell`), or the program when `args` is given.",
        "args": "Argument list run without a shell.",
        "shell": "bash, sh, cmd or powershell (null: the worker's default).",
        "env": "Extra environment variables of the command.",
        "cwd": "Working directory of the command (null: the worker's).",
        "retries": "Further attempts after a failed or timed-out one.",
        "timeout": "Seconds before the command's whole process tree is killed.",
        "priority": "0 (lowest) to 100 (highest).",
        "schedule": "5-field cron expression of a recurring job.",
        "timezone": "IANA time zone of `schedule`.",
        "scheduled_at": "When a one-off job runs (ISO 8601, UTC).",
        "affinity": "Where the job may run: OS, tags, allowed users.",
        "created_at": "When it was created.",
        "updated_at": "When it last changed.",
        "updated_by": "Who changed it last.",
        "user_filter": "Only jobs of this user.",
    },
    "Job": {
        "last_run_id": "The job's most recently changed run.",
    },
    "JobCreated": {
        "job_id": "The new job's id.",
        "worker_id": "The worker the run was routed to (null while pending).",
        "pending_reason": "Why no worker could take the run yet (null when queued).",
    },
    "Run": {
        "id": "The run id (also the Celery task id).",
        "job_name": "Name of the job.",
        "user": "User the run is for.",
        "attempt": "1 for the first attempt of the job, 2 for its first retry, ...",
        "retry_of": "The attempt this one follows (a retry or failover), or null.",
        "status": "pending, queued, running, succeeded, failed, timed_out, cancelled, lost, retrying or dead_letter.",
        "decision": "Why the attempt's end led to its status (retry n of m, failover, dead letter).",
        "worker_id": "The worker it was routed to or ran on.",
        "queue": "The Celery queue its message was published to.",
        "pending_reason": "Why it waits (no eligible worker, start time not reached).",
        "priority": "Priority of the job.",
        "returncode": "Exit code (negative: killed by that signal; null: never ran).",
        "stdout": "Standard output (head and tail when longer than the output limit).",
        "stderr": "Standard error (head and tail when longer than the output limit).",
        "stdout_bytes": "Bytes written to stdout in all.",
        "stderr_bytes": "Bytes written to stderr in all.",
        "stdout_truncated": "stdout was longer than the output limit (the middle was left out).",
        "stderr_truncated": "stderr was longer than the output limit (the middle was left out).",
        "error": "Why it did not succeed when the exit code does not say.",
        "queued_at": "When the attempt was recorded.",
        "placed_at": "When it was routed to a worker's queue.",
        "started_at": "When the worker started the command.",
        "finished_at": "When the attempt ended.",
        "duration": "Seconds the command ran.",
        "ended_by": "Who recorded the end: the worker's name, the controller, or a user.",
    },
    "Worker": {
        "id": "The worker's Celery node name (name@host).",
        "os": "linux, macos or windows.",
        "tags": "Capability tags (from its tag.* queues).",
        "max_concurrency": "Commands it runs at once (its pool size).",
        "current_running": "Commands running at its last heartbeat.",
        "last_heartbeat": "Time of its last heartbeat.",
        "heartbeat_interval": "Seconds between its heartbeats.",
        "queue": "Its own queue (hydra.worker.<id>).",
        "shells": "Shells found on the machine.",
        "resource_limits": "It can enforce jobs' resource limits (memory and cpu cgroup controllers).",
        "hostname": "Its machine.",
        "pid": "Its main process id.",
        "processed": "Tasks it has processed since it started.",
        "first_seen": "When the controller first saw it.",
    },
    "Health": {
        "redis": "`ok`, and `error` when Redis does not answer.",
        "mongodb": "`ok`, and `error` when MongoDB does not answer.",
        "controller": "`ok` while a controller is alive, and its `name`.",
        "workers": "Number of workers by status (online, offline).",
        "message": "Which services are down (only when some are).",
    },
    "Error": {
        "code": "HTTP status code.",
        "status": "HTTP status name.",
        "message": "What went wrong.",
        "errors": "Invalid fields by location (`json`, `query`, `path`) and name, each with its messages.",
    },
    "PaginationMetadata": {
        "total": "Number of items.",
        "total_pages": "Number of pages.",
        "first_page": "First page.",
        "last_page": "Last page.",
        "page": "This page.",
        "previous_page": "Previous page.",
        "next_page": "Next page.",
    },
}


#: Descriptions of query parameters whose schema gives none.
PARAM_DOCS = {
    "cursor": "Where the previous page ended: its X-Next-Cursor header (opaque).",
    "task_id": "The task's id (the id POST /schedule returned).",
    "status": "Only those whose (latest) run has this status; `completed` means succeeded.",
    "user": "Only those of this user.",
    "limit": "At most this many items.",
    "job_id": "The job's id.",
    "run_id": "The run's id (the Celery task id).",
    "token_id": "The token's id (`hydra_<id>_...`).",
    "namespace": "The namespace.",
}


def _describe(parameters: list) -> None:
    for parameter in parameters:
        if isinstance(parameter, dict) and not parameter.get("description") and parameter.get("name") in PARAM_DOCS:
            parameter["description"] = PARAM_DOCS[parameter["name"]]


class ErrorResponses(BasePlugin):
    """apispec plugin: documents each operation's error answers with the error schema."""

    def init_spec(self, spec) -> None:
        self.spec = spec
        spec.components.schema("Error", schema=ErrorSchema)

    def path_helper(self, path=None, operations=None, parameters=None, **kwargs) -> None:
        _describe(parameters or [])

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for operation in (operations or {}).values():
            if not isinstance(operation, dict):
                continue
            _describe(operation.get("parameters", []))
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            for code in [c for c in responses if not isinstance(c, str)]:
                # a view's own answer (alt_response(503, ...) on /health) keyed by an int: the
                # standard one added below under "503" would otherwise replace it in the JSON
                responses[str(code)] = responses.pop(code)
            wanted = ["500", "503"]
            if auth.is_public((path or "/").rstrip("/") or "/"):
                operation["security"] = []
            else:
                wanted += ["401", "403"]
            if "requestBody" in operation:
                wanted += ["400", "413"]
            # gunicorn's limits, answered in the error shape by gunicorn.conf.py: a long query
            # or path parameter makes the request line too long; any request can carry too
            # many or too large header fields.
            wanted.append("431")
            params = [p for p in operation.get("parameters", []) if isinstance(p, dict)]
            if any(p.get("in") == "query" for p in params) or re.search(r"{[^}]+}", path or ""):
                wanted.append("414")
            if re.search(r"{[^}]+}", path or ""):
                wanted.append("404")
            for code in wanted:
                responses.setdefault(code, {"description": _STANDARD[code]})
            for code, response in responses.items():
                if str(code).isdigit() and int(code) >= 400 and isinstance(response, dict) and "$ref" not in response:
                    response.setdefault("description", _STANDARD.get(str(code), "Error."))
                    response.setdefault("content", _ERROR_CONTENT)
            if "401" in responses:
                responses["401"].setdefault(
                    "headers",
                    {
                        "WWW-Authenticate": {
                            "description": "How to authenticate: `Bearer`.",
                            "schema": {"type": "string"},
                        }
                    },
                )
            responses["503"].setdefault(
                "headers",
                {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}},
            )


class HydraApi(Api):
    """flask-smorest's Api without the catch-all ``default`` error response (each
    operation lists its error answers; see :class:`ErrorResponses`)."""

    DEFAULT_ERROR_RESPONSE_NAME = None


def configure(app: Flask) -> dict:
    """Set the docs' configuration (before the Api is created); returns the Api's spec kwargs."""
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "/docs/assets/")
    app.config.setdefault("API_SPEC_OPTIONS", {"info": {"description": DESCRIPTION}})

    @app.get("/docs/assets/<path:filename>")
    def swagger_ui_asset(filename):
        return send_from_directory(SWAGGER_UI_ASSETS, filename, max_age=3600)

    return {"extra_plugins": [ErrorResponses()]}


#: Rules of a job body that the field types cannot say (checked by hydra.spec.JobSpecSchema).
JOB_RULES = (
    "Besides each field's own rules: give `command` or `args` (or both: then `command` is the "
    "program and runs without a shell); `args` excludes `shell`; when `affinity.allowed_users` "
    "is not empty it must contain `user`; `schedule` and `scheduled_at` exclude each other. "
    "A body breaking one of these gets 422 naming the field."
)


#: What the job bodies' OpenAPI description says of the read-only fields they accept.
READ_ONLY_DOC = (
    "Read-only: part of an answer about a job (its state). A body may hold it - a job fetched with "
    "GET and sent back - and it is ignored."
)


def describe_fields(api: Api) -> None:
    """Fill in :data:`FIELD_DOCS` for schema properties that have no description, and
    document the job body's cross-field rules."""
    schemas = api.spec.components.schemas
    if "JobSpec" in schemas:
        spec = schemas["JobSpec"]
        spec.setdefault("description", JOB_RULES)
        spec.setdefault("anyOf", [{"required": ["command"]}, {"required": ["args"]}])
    for name in ("JobSpec", "JobPatch", "Schedule"):  # bodies that take an answer back (hydra.model.spec)
        properties = schemas.get(name, {}).get("properties")
        for field_name in sorted(spec_fields.READ_ONLY_FIELDS) if properties is not None else ():
            properties.setdefault(field_name, {"readOnly": True, "description": READ_ONLY_DOC})
    for name, schema in schemas.items():
        for field_name, prop in (schema.get("properties") or {}).items():
            if "description" in prop:
                continue
            text = FIELD_DOCS.get(name, {}).get(field_name) or FIELD_DOCS["*"].get(field_name)
            if not text:
                continue
            if "$ref" in prop:  # OpenAPI 3.0 ignores a $ref's siblings
                properties = schema["properties"]
                properties[field_name] = {"allOf": [{"$ref": prop["$ref"]}], "description": text}
            else:
                prop["description"] = text
