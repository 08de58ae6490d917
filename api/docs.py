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
* **Every field described.** Schema fields and query parameters describe themselves where
  they are defined (``metadata={"description": ...}``); path parameters get theirs from
  :data:`PARAM_DOCS` (tests/unit/test_openapi_doc.py checks that none is left without).
"""

from __future__ import annotations

import re
from pathlib import Path

from apispec import BasePlugin
from flask import Flask, send_from_directory
from flask_smorest import Api
from flask_smorest.error_handler import ErrorSchema

from api import auth
from hydra.errors import Conflict, Forbidden, HydraError, InvalidRequest, NotAuthenticated, NotFound, Unavailable
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
#: The error answers' descriptions: Hydra's errors say their own (hydra/errors.py), the rest
#: are answers of the HTTP stack.
_STANDARD = {
    "400": "The body is not valid JSON.",
    "413": "The body is larger than the API accepts (2 MiB).",
    "414": "The request line (method, path, query and version) is longer than 4094 bytes.",
    "431": "More than 100 header fields, or one (name and value) longer than 8190 bytes.",
    **{
        str(cls.http_status): cls.answer_doc
        for cls in (HydraError, NotAuthenticated, Forbidden, NotFound, Conflict, InvalidRequest, Unavailable)
    },
}

#: Descriptions of path parameters (parts of a URL rule, not schema fields: every schema field
#: and query parameter says what it is in its own ``metadata``).
PARAM_DOCS = {
    "task_id": "The task's id (the id POST /schedule returned).",
    "job_id": "The job's id.",
    "run_id": "The run's id (the Celery task id).",
    "token_id": "The token's id (`hydra_<id>_...`).",
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
    """Document the job body's cross-field rules (each field describes itself, in its
    ``metadata``)."""
    schemas = api.spec.components.schemas
    if "JobSpec" in schemas:
        spec = schemas["JobSpec"]
        spec.setdefault("description", JOB_RULES)
        spec.setdefault("anyOf", [{"required": ["command"]}, {"required": ["args"]}])
    for name in ("JobSpec", "JobPatch", "Schedule"):  # bodies that take an answer back (hydra.model.spec)
        properties = schemas.get(name, {}).get("properties")
        for field_name in sorted(spec_fields.READ_ONLY_FIELDS) if properties is not None else ():
            properties.setdefault(field_name, {"readOnly": True, "description": READ_ONLY_DOC})
