"""Who is using the console: sign-in with a token, the session cookie, and CSRF tokens.

Signing in checks the credential exactly as the REST API does (``hydra.auth.bearer``: a Hydra
API token, or a JWT of the configured OIDC issuer). The session keeps the credential itself,
encrypted (Fernet, with a key derived from the stack's signing key, so every API process
reads it and nobody can read or forge it), and every request authenticates it again: a
revoked token or an expired JWT ends the session within a second, and the console's caller
is the same ``Principal`` the REST API would see, with the same roles.

The cookie is HttpOnly, SameSite=Lax, and Secure when the request came over TLS (directly, or
through a proxy that says ``X-Forwarded-Proto: https``). Every POST carries the session's CSRF
token (a random value kept in the session, compared in constant time); sign-in too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, abort, g, request, session
from flask.sessions import SecureCookieSessionInterface

from hydra.auth import bearer
from hydra.dispatch import signing
from hydra.errors import NotAuthenticated
from hydra.model.access import Principal
from hydra.settings import get_settings

#: How long a console session lasts without signing in again.
LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"


def _derived(purpose: bytes) -> bytes:
    return hmac.new(signing.keys()[0], b"hydra-console:" + purpose, hashlib.sha256).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derived(b"credential")))


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure or forwarded == "https"


def configure(app: Flask) -> None:
    app.secret_key = _derived(b"cookie").hex()
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="hydra_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/ui",
        PERMANENT_SESSION_LIFETIME=LIFETIME,
    )


def sign_in(credential: str) -> Principal:
    """Check ``credential`` as the REST API would, and start a session with it."""
    principal = bearer.authenticate(f"Bearer {credential.strip()}", settings=get_settings())
    if principal is bearer.SCRAPER:
        raise NotAuthenticated("the scrape token may only read /metrics")
    session.clear()
    session.permanent = True
    session["credential"] = _fernet().encrypt(credential.strip().encode()).decode()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return principal


def sign_out() -> None:
    session.clear()


def current() -> Principal | None:
    """The signed-in principal, authenticated again now; None when there is none (or it no
    longer verifies: revoked, expired)."""
    if "principal" in g:
        return g.principal
    sealed = session.get("credential")
    principal = None
    if sealed:
        try:
            credential = _fernet().decrypt(sealed.encode(), ttl=int(LIFETIME.total_seconds())).decode()
            principal = bearer.authenticate(f"Bearer {credential}", settings=get_settings())
        except (InvalidToken, NotAuthenticated):
            session.pop("credential", None)
    if principal is bearer.SCRAPER:
        principal = None
    g.principal = principal
    return principal


def csrf_token() -> str:
    """The session's CSRF token (made on first use: the sign-in form needs one too)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse (400) a POST without the session's CSRF token."""
    sent = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(CSRF_FIELD) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="the form is stale or did not come from this console (CSRF token missing or wrong)")
