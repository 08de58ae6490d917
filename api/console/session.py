"""Who is using the console: sign-in with a token, the session cookie, and CSRF tokens.

Signing in checks the credential exactly as the REST API does (``hydra.auth.bearer``: a Hydra
API token, or a JWT of the configured OIDC issuer). The session keeps the credential itself,
encrypted (Fernet, with a key derived from the stack's private signing key, so every API process
reads it and nobody can read or forge it), and every request authenticates it again: a
revoked token or an expired JWT ends the session within a second, and the console's caller
is the same ``Principal`` the REST API would see, with the same roles.

With ``HYDRA_OIDC_CLIENT_ID`` the sign-in page also offers the issuer's own sign-in
(authorization code flow with PKCE, a ``state`` and a ``nonce`` kept in the session for the
round trip, ``hydra.auth.oidc``); the session then keeps the ID token and verifies it on
every request the same way (until it expires: then one signs in again).

Each session also has a random id, recorded on the server from sign-in to sign-out
(``hydra.store.sessions``): signing out deletes the record, so a copy of the cookie taken before
signs nobody in afterwards, on every API process.

The cookie is HttpOnly, SameSite=Lax, and Secure when the request came over TLS (directly, or
through a proxy that says ``X-Forwarded-Proto: https``). Every POST carries the session's CSRF
token (a random value kept in the session, compared in constant time); sign-in too.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, abort, g, request, session
from flask.sessions import SecureCookieSessionInterface

from hydra.auth import bearer, oidc
from hydra.dispatch import signing
from hydra.errors import NotAuthenticated
from hydra.model.access import Principal
from hydra.settings import get_settings
from hydra.store.sessions import ConsoleSessionStore

#: How long a console session lasts without signing in again.
LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
#: The session's key holding its id (the server's record of it: ``hydra.store.sessions``).
SESSION_ID = "sid"


def _derived(purpose: bytes) -> bytes:
    return signing.derived_secret(b"console:" + purpose)


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


#: What the session's credential is: a bearer credential (API token, or a JWT for the API's
#: audience), or an ID token of the console's OIDC sign-in (audience: its client id).
BEARER, ID_TOKEN = "bearer", "oidc-id-token"


def _start(credential: str, kind: str, principal: Principal) -> None:
    """A new session for ``principal`` (the browser's previous one, if any, ends)."""
    sign_out()
    session_id = secrets.token_urlsafe(32)
    ConsoleSessionStore().start(session_id, user=principal.user, via=principal.via, lifetime=LIFETIME)
    session.permanent = True
    session[SESSION_ID] = session_id
    session["credential"] = _fernet().encrypt(credential.encode()).decode()
    session["kind"] = kind
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def sign_in(credential: str) -> Principal:
    """Check ``credential`` as the REST API would, and start a session with it."""
    principal = bearer.authenticate(f"Bearer {credential.strip()}", settings=get_settings())
    if principal is bearer.SCRAPER:
        raise NotAuthenticated("the scrape token may only read /metrics")
    _start(credential.strip(), BEARER, principal)
    return principal


def oidc_enabled() -> bool:
    settings = get_settings()
    return bool(settings.oidc_issuer and settings.oidc_client_id)


def begin_oidc(redirect_uri: str, next_path: str) -> str:
    """Where to send the browser to sign in at the issuer (the round trip's secrets stay in the session)."""
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
        "redirect_uri": redirect_uri,
        "next": next_path,
    }
    session["oidc_flow"] = flow
    return oidc.authorization_url(
        get_settings(), redirect_uri=redirect_uri, state=flow["state"], nonce=flow["nonce"], verifier=flow["verifier"]
    )


def finish_oidc(code: str, state: str) -> tuple[Principal, str]:
    """The issuer sent the browser back: check ``state``, trade ``code`` for the ID token and
    start the session with it; (whom it proves, where to go next)."""
    flow = session.pop("oidc_flow", None)
    if not flow or not state or not hmac.compare_digest(state.encode(), flow["state"].encode()):
        raise NotAuthenticated("this sign-in did not start here, or took too long: start again")
    token, principal = oidc.exchange(
        get_settings(), code=code, redirect_uri=flow["redirect_uri"], verifier=flow["verifier"], nonce=flow["nonce"]
    )
    _start(token, ID_TOKEN, principal)
    return principal, flow["next"]


def _authenticate(credential: str, kind: str) -> Principal:
    settings = get_settings()
    if kind == ID_TOKEN:
        if not oidc_enabled():
            raise NotAuthenticated("OIDC sign-in is no longer configured")
        return oidc.verify(credential, settings, audience=settings.oidc_client_id)
    return bearer.authenticate(f"Bearer {credential}", settings=settings)


def sign_out() -> None:
    """End the session: its server record goes (every copy of the cookie stops working)."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        ConsoleSessionStore().end(session_id)
    session.clear()


def current() -> Principal | None:
    """The signed-in principal, authenticated again now; None when there is none (signed out,
    or it no longer verifies: revoked, expired)."""
    if "principal" in g:
        return g.principal
    sealed = session.get("credential")
    session_id = session.get(SESSION_ID)
    principal = None
    if sealed:
        try:
            if not isinstance(session_id, str) or not ConsoleSessionStore().live(session_id):
                raise NotAuthenticated("the session was signed out")
            credential = _fernet().decrypt(sealed.encode(), ttl=int(LIFETIME.total_seconds())).decode()
            principal = _authenticate(credential, session.get("kind", BEARER))
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
