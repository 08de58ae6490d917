"""JSON Web Tokens from an OpenID Connect provider (optional: ``HYDRA_OIDC_ISSUER``).

The token's signature is checked against the issuer's published keys (its JWKS, found
through ``/.well-known/openid-configuration`` unless ``HYDRA_OIDC_JWKS_URL`` names it), with
PyJWT; so are its ``iss``, ``aud`` (``HYDRA_OIDC_AUDIENCE``), ``exp`` and ``nbf``. The user is
the claim ``HYDRA_OIDC_USER_CLAIM`` (default ``preferred_username``, else ``sub``); roles come
from the claim ``HYDRA_OIDC_ROLES_CLAIM`` (default ``hydra_roles``): a list of
``namespace=role`` strings (``*=viewer``, ``team-a=operator``), or an object
``{namespace: role}``. A token without roles authenticates a caller who may do nothing.
Only asymmetric algorithms are accepted (RS256, ES256, ...): never ``none`` or a shared secret.
"""

from __future__ import annotations

import functools
import logging

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
def discover_jwks_url(issuer: str) -> str:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()["jwks_uri"]


def verify(token: str, settings: Settings) -> Principal:
    """The principal a JWT authenticates; NotAuthenticated if it does not verify."""
    assert settings.oidc_issuer
    try:
        jwks_url = settings.oidc_jwks_url or discover_jwks_url(settings.oidc_issuer)
        key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            options={"require": ["exp", "iss", "sub"]},
        )
    except (jwt.PyJWTError, requests.RequestException, KeyError, ValueError) as exc:
        log.info("JWT refused: %s", exc, extra={"event": "auth.refused"})
        raise NotAuthenticated(f"the token does not verify: {exc.__class__.__name__}") from None
    user = claims.get(settings.oidc_user_claim) or claims["sub"]
    raw = claims.get(settings.oidc_roles_claim) or []
    try:
        roles = parse_grants(raw if isinstance(raw, (dict, list)) else [])
    except ValueError:
        roles = {}
    return Principal(user=str(user), roles=roles, via=f"oidc:{settings.oidc_issuer}")
