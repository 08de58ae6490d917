"""The console's Flask blueprint, its guard (session and CSRF) and its error pages."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from api.console import session as sessions
from hydra.errors import Conflict, Forbidden, InvalidJob, NotAuthenticated, NotFound, Unavailable
from hydra.model.access import Principal
from hydra.model.status import RunStatus

log = logging.getLogger(__name__)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: Pages anyone may load: the sign-in form and the console's own assets.
OPEN = {"console.login", "console.login_post", "console.login_oidc", "console.login_oidc_callback", "console.static"}
TERMINAL = {s.value for s in RunStatus if s.is_terminal}


def wants_json() -> bool:
    return request.path.endswith(".json")


@bp.before_request
def guard():
    if request.method == "POST":
        sessions.check_csrf()
    if request.endpoint in OPEN:
        return None
    if sessions.current() is None:
        if wants_json() or request.method != "GET":
            return jsonify({"code": 401, "message": "sign in to the console first"}), 401
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def headers(response):
    # The console's pages frame nothing and are framed by nothing; scripts and styles are its own.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "console.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.app_context_processor
def helpers():
    principal = sessions.current() if request.blueprint == "console" else None

    def can(action: str, namespace: str) -> bool:
        return principal is not None and principal.can(action, namespace)

    def may_drain(namespaces: list[str] | None) -> bool:
        """It may drain a worker serving ``namespaces`` (None: all): an operator of each."""
        return principal is not None and all(principal.can("drain", ns) for ns in namespaces or ["*"])

    submits = principal is not None and may_submit(principal)
    return {
        "me": principal,
        "can": can,
        "may_drain": may_drain,
        "submits": submits,
        "csrf_token": sessions.csrf_token,
        "terminal": TERMINAL,
    }


def may_submit(principal: Principal) -> bool:
    """It may submit a job in some namespace (operator or admin there)."""
    return any(principal.can("submit", ns) for ns in principal.roles)


def require_submitter(principal: Principal) -> None:
    """The submit form is for those who may submit somewhere: anyone else gets a 403 page."""
    if not may_submit(principal):
        roles = ", ".join(f"{ns}={role}" for ns, role in principal.grants().items()) or "none"
        raise Forbidden(
            f"You ({principal.user}) may not submit here: submitting a job needs the operator or admin "
            f"role in a namespace, and your roles are {roles}."
        )


def _page(code: int, message: str):
    if wants_json():
        return jsonify({"code": code, "message": message}), code
    return render_template("console/error.html", code=code, message=message), code


@bp.errorhandler(NotAuthenticated)
def not_authenticated(exc):
    # (A failed OIDC round trip; a session that stopped verifying was dropped by sessions.current.)
    flash(str(exc), "error")
    return redirect(url_for("console.login"))


@bp.errorhandler(Forbidden)
def forbidden(exc):
    return _page(403, str(exc))


@bp.errorhandler(NotFound)
def not_found(exc):
    return _page(404, str(exc))


@bp.errorhandler(Conflict)
def conflict(exc):
    return _page(409, str(exc))


@bp.errorhandler(InvalidJob)
def invalid(exc):
    return _page(422, f"invalid: {exc.errors}")


@bp.errorhandler(Unavailable)
def unavailable(exc):
    return _page(503, f"{exc.service} is unavailable; try again in a few seconds")


@bp.app_template_filter("with_cursor")
def with_cursor(args, cursor: str) -> str:
    return urlencode({**args.to_dict(), "cursor": cursor})


@bp.app_template_filter("reject_cursor")
def reject_cursor(args) -> str:
    return urlencode({k: v for k, v in args.to_dict().items() if k != "cursor"})


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return _page(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(Exception)
def unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return http_error(exc)
    log.exception("console: unhandled error")
    return _page(500, "internal error (logged)")
