"""JSON Web Tokens from an OpenID Connect provider (optional: ``HYDRA_OIDC_ISSUER``).

The token's signature is checked against the issuer's published keys (its JWKS, found
through ``/.well-known/openid-configuration`` unless ``HYDRA_OIDC_JWKS_URL`` names it), with
PyJWT; so are its ``iss``, ``aud`` (``HYDRA_OIDC_AUDIENCE``), ``exp`` and ``nbf``. The user is
the claim ``HYDRA_OIDC_USER_CLAIM`` (default ``preferred_username``, else ``sub``); roles come
from the claim ``HYDRA_OIDC_ROLES_CLAIM`` (default ``hydra_roles``): a list of
``namespace=role`` strings (``*=viewer``, ``team-a=operator``), or an object
``{namespace: role}``. A token without roles authenticates a caller who may do nothing.
Only asymmetric algorithms are accepted (RS256, ES256, ...): never ``none`` or a shared secret.

The web console signs people in with the authorization code flow and PKCE when
``HYDRA_OIDC_CLIENT_ID`` is set (:func:`authorization_url`, :func:`exchange`); the ID token it
gets is verified here like any other JWT, with the client id as its audience and the nonce
the console sent.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from typing import Any
from urllib.parse import urlencode

import jwt
import requests

from hydra.errors import NotAuthenticated
from hydra.model.access import Principal, parse_grants
from hydra.settings import Settings

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"]


@functools.lru_cache(maxsize=4)
def _jwks_client(url: str) -> jwt.PyJWKClient:
    # Keys are cached by the client (and fetched again for an unknown key id: rotation).
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


@functools.lru_cache(maxsize=4)
def discovery(issuer: str) -> dict[str, Any]:
    """The issuer's discovery document (``/.well-known/openid-configuration``)."""
    response = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=5)
    response.raise_for_status()
    return response.json()


def discover_jwks_url(issuer: str) -> str:
    return discovery(issuer)["jwks_uri"]


def claims_of(token: str, settings: Settings, *, audience: str | None = None) -> dict[str, Any]:
    """The verified claims of a JWT (``audience``: default ``HYDRA_OIDC_AUDIENCE``); NotAuthenticated otherwise."""
    assert settings.oidc_issuer
    try:
        jwks_url = settings.oidc_jwks_url or discover_jwks_url(settings.oidc_issuer)
        key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=settings.oidc_issuer,
            audience=audience or settings.oidc_audience,
            options={"require": ["exp", "iss", "sub"]},
        )
    except (jwt.PyJWTError, requests.RequestException, KeyError, ValueError) as exc:
        log.info("JWT refused: %s", exc, extra={"event": "auth.refused"})
        raise NotAuthenticated(f"the token does not verify: {exc.__class__.__name__}") from None


def principal_of(claims: dict[str, Any], settings: Settings) -> Principal:
    user = claims.get(settings.oidc_user_claim) or claims["sub"]
    raw = claims.get(settings.oidc_roles_claim) or []
    try:
        roles = parse_grants(raw if isinstance(raw, (dict, list)) else [])
    except ValueError:
        roles = {}
    return Principal(user=str(user), roles=roles, via=f"oidc:{settings.oidc_issuer}")


def verify(token: str, settings: Settings, *, audience: str | None = None) -> Principal:
    """The principal a JWT authenticates; NotAuthenticated if it does not verify."""
    return principal_of(claims_of(token, settings, audience=audience), settings)


# -- the console's sign-in: authorization code flow with PKCE -----------------------------------


def pkce_challenge(verifier: str) -> str:
    """S256: the unpadded base64url SHA-256 of the verifier (RFC 7636)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorization_url(settings: Settings, *, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
    """Where the browser goes to sign in at the issuer."""
    assert settings.oidc_issuer and settings.oidc_client_id
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return discovery(settings.oidc_issuer)["authorization_endpoint"] + "?" + urlencode(query)


def exchange(settings: Settings, *, code: str, redirect_uri: str, verifier: str, nonce: str) -> tuple[str, Principal]:
    """Trade the issuer's code for its ID token, verified (audience: the client id; the nonce
    sent); (the token, whom it proves). NotAuthenticated when anything does not check out."""
    assert settings.oidc_issuer and settings.oidc_client_id
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": settings.oidc_client_id,
        "code_verifier": verifier,
    }
    if settings.oidc_client_secret:
        form["client_secret"] = settings.oidc_client_secret
    try:
        response = requests.post(discovery(settings.oidc_issuer)["token_endpoint"], data=form, timeout=10)
        response.raise_for_status()
        token = response.json()["id_token"]
    except (requests.RequestException, KeyError, ValueError) as exc:
        log.info("OIDC code exchange failed: %s", exc, extra={"event": "auth.refused"})
        raise NotAuthenticated(f"the issuer did not give an ID token: {exc.__class__.__name__}") from None
    claims = claims_of(token, settings, audience=settings.oidc_client_id)
    if claims.get("nonce") != nonce:
        raise NotAuthenticated("the ID token's nonce is not the one this sign-in sent")
    return token, principal_of(claims, settings)
