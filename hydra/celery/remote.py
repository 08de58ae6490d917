"""``run_command.apply_async`` through the REST API, from a Python process configured as a
client: ``HYDRA_API_URL`` and ``HYDRA_TOKEN``, and neither the signing key nor store
credentials (``HYDRA_SUBMIT_VIA``: ``auto`` chooses this when the process has a token and no
signing key; ``api`` always; ``broker`` never).

``Hydra.send_task`` then posts the task and its canvas to ``POST /tasks/``, Celery's
``apply_chord`` posts a chord to ``POST /tasks/chords``, and ``AsyncResult`` reads a run with
``GET /runs/{id}`` (following its retries with ``GET /runs/{id}/flow``): the API runs the
publish path as the token's principal - its roles, namespaces and quotas - and audits it
(``hydra.control.tasks``). The API's answers come back as Hydra's errors: a 422 as
InvalidJob naming the field, a 403 as Forbidden, a 503 or no answer as Unavailable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from hydra.dispatch.envelope import plain
from hydra.dispatch.signing import can_sign
from hydra.dispatch.submissions import API_OPTIONS, PLACING_OPTIONS
from hydra.errors import Forbidden, HydraError, InvalidJob, NotAuthenticated, Unavailable
from hydra.settings import Settings, get_settings

#: Seconds one call to the API may take.
TIMEOUT = 30.0


def enabled(settings: Settings | None = None) -> bool:
    """Whether this process submits through the API (see the module docstring)."""
    settings = settings or get_settings()
    if settings.submit_via == "api":
        return True
    if settings.submit_via == "broker":
        return False
    return bool(settings.token) and not can_sign()


def sent_options(options: dict) -> dict:
    """The options the API takes, as JSON (signatures in their dict form); InvalidJob for an
    option that would choose a queue or a serializer, which the API does not take."""
    chosen = sorted(name for name in PLACING_OPTIONS if options.get(name))
    if chosen:
        raise InvalidJob({name: ["not taken through the API: the router places runs"] for name in chosen})
    if options.get("serializer") not in (None, "json") or options.get("compression"):
        raise InvalidJob({"serializer": ["hydra.run_command messages are JSON only"]})
    return plain({key: value for key, value in options.items() if key in API_OPTIONS and value is not None})


class Api:
    """The calls this process makes to the API."""

    def __init__(self, settings: Settings | None = None, session: requests.Session | None = None):
        settings = settings or get_settings()
        self.url = settings.api_url.rstrip("/")
        self.session = session or requests.Session()
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token.strip()}"

    def submit(self, kwargs: Any, options: dict) -> str:
        """Post one task; its run id."""
        answer = self._call("POST", "/tasks/", {"kwargs": plain(kwargs or {}), "options": sent_options(options)})
        return str(answer["run_id"])

    def chord(self, group_id: str, parts: list[str], body: Any) -> None:
        self._call("POST", "/tasks/chords", {"group_id": group_id, "parts": parts, "body": plain(dict(body))})

    def run(self, run_id: str) -> dict | None:
        """The run as ``GET /runs/{id}`` answers it (None: no such run yet)."""
        return self._call("GET", f"/runs/{quote(run_id, safe='')}", missing_ok=True)

    def next_of(self, run_id: str) -> str | None:
        flow = self._call("GET", f"/runs/{quote(run_id, safe='')}/flow", missing_ok=True)
        return (flow or {}).get("next")

    def _call(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        try:
            response = self.session.request(method, self.url + path, json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise Unavailable(f"cannot reach the Hydra API at {self.url}: {exc.__class__.__name__}") from exc
        if response.status_code in (200, 201):
            return response.json()
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        message = answer.get("message") or f"{method} {path}: HTTP {response.status_code}"
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code == 422:
            raise InvalidJob((answer.get("errors") or {}).get("json") or {"_schema": [message]})
        if response.status_code == 401:
            raise NotAuthenticated(message)
        if response.status_code == 403:
            raise Forbidden(message)
        if response.status_code in (502, 503, 504):
            raise Unavailable(message)
        raise HydraError(message)
