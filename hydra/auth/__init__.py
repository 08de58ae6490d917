"""Authentication: from the credentials a caller presents to a :class:`~hydra.model.access.Principal`.

* ``tokens`` - Hydra's API tokens (``Authorization: Bearer hydra_<id>_<secret>``): made,
  verified against the stored hash, revoked;
* ``oidc``   - JSON Web Tokens from an OpenID Connect provider, when one is configured
  (``HYDRA_OIDC_ISSUER``): signature checked against the issuer's published keys (PyJWT);
* ``bearer`` - which of the two a bearer token is, and the ``/metrics`` scrape token.

What a principal may then do is ``hydra.model.access``; the verbs check it (``hydra.control``).
"""
