"""Every request is authenticated, except ``/health`` and the API's own description.

``Authorization: Bearer <token>`` carries a Hydra API token (``hydra token create``, or the
admin token ``make up`` writes to ``.hydra/admin.token``), or a JWT of the configured OIDC
issuer. The principal it proves (``hydra.model.access.Principal``) is :func:`caller` for the
rest of the request; the verbs and readers of ``hydra.control`` decide what it may do.
``/metrics`` also takes the scrape token (``HYDRA_METRICS_TOKEN``) and otherwise needs a role
in every namespace (its counts span all of them).

No credentials, or credentials that prove nothing, answer 401 with ``WWW-Authenticate``;
a known caller without the right answers 403 (see ``api.errors``).
"""

from __future__ import annotations

from flask import Flask, g, request

from hydra.auth import bearer
from hydra.errors import Forbidden
from hydra.model.access import Principal
from hydra.settings import get_settings

#: Paths anyone may read: the health check, and the API's description (it holds no data).
PUBLIC = ("/health", "/openapi.json", "/docs")
SCHEME = "bearerAuth"


def is_public(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC)


def caller() -> Principal:
    """The principal of the current request."""
    return g.principal


def init_app(app: Flask) -> None:
    @app.before_request
    def authenticate():
        if request.method == "OPTIONS" or is_public(request.path.rstrip("/") or "/"):
            return
        principal = bearer.authenticate(request.headers.get("Authorization"), settings=get_settings())
        if request.path.rstrip("/") == "/metrics":
            if principal is not bearer.SCRAPER and not principal.sees_everything:
                raise Forbidden("/metrics counts every namespace: it needs the scrape token or a role in '*'")
        elif principal is bearer.SCRAPER:
            raise Forbidden("the scrape token may only read /metrics")
        g.principal = principal


def document(spec) -> None:
    """The bearer scheme in the OpenAPI description, required by every operation but the public ones."""
    spec.components.security_scheme(
        SCHEME,
        {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A Hydra API token (`hydra_<id>_<secret>`: `hydra token create`; `make up` writes an admin "
                "token to `.hydra/admin.token`), or a JWT of the configured OIDC issuer."
            ),
        },
    )
    spec.options["security"] = [{SCHEME: []}]
