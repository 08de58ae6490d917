"""``Authorization: Bearer <credential>``: which kind of credential it is, and whom it proves.

* ``hydra_<id>_<secret>`` - a Hydra API token (``hydra.auth.tokens``);
* the scrape token (``HYDRA_METRICS_TOKEN``) - may read ``/metrics`` and nothing else;
* anything else, when an OIDC issuer is configured - a JWT (``hydra.auth.oidc``).

A verified API token is remembered for :data:`CACHE_SECONDS` (per process), so a busy client
costs one store read a second, not one per request; a revoked token stops working within that.
"""

from __future__ import annotations

import hmac
import threading
import time

from hydra.auth import oidc, tokens
from hydra.errors import NotAuthenticated
from hydra.model.access import Principal
from hydra.settings import Settings
from hydra.store.tokens import TokenStore

CACHE_SECONDS = 1.0
#: What the scrape token authenticates as.
SCRAPER = Principal(user="metrics-scraper", via="scrape")

_cache: dict[str, tuple[float, Principal]] = {}
_lock = threading.Lock()


def authenticate(header: str | None, *, settings: Settings, store: TokenStore | None = None) -> Principal:
    """The principal an Authorization header proves; NotAuthenticated otherwise."""
    scheme, _, credential = (header or "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise NotAuthenticated("send 'Authorization: Bearer <token>' (make up wrote one to .hydra/admin.token)")
    if settings.metrics_token and hmac.compare_digest(credential.encode(), settings.metrics_token.encode()):
        return SCRAPER
    if tokens.token_id_of(credential) is not None:
        return _verified(credential, store or TokenStore())
    if settings.oidc_issuer:
        return oidc.verify(credential, settings)
    raise NotAuthenticated("unknown or malformed token")


def _verified(credential: str, store: TokenStore) -> Principal:
    key = tokens.digest(credential)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    principal = tokens.verify(store, credential)
    with _lock:
        if len(_cache) > 1000:
            _cache.clear()
        _cache[key] = (now, principal)
    return principal


def forget() -> None:
    """Drop remembered verifications (after a revocation in this process)."""
    with _lock:
        _cache.clear()
