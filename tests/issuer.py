"""A test OIDC issuer: an RSA signing key, its JWKS served over HTTP on loopback, and a signer
of tokens with the issuer's claims filled in (unit and integration tests of OIDC share it)."""

from __future__ import annotations

import http.server
import json
import threading
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class Issuer:
    def __init__(self, name: str, *, subject: str, kid: str = "k1", ttl: float = 300):
        self.name, self.subject, self.kid, self.ttl = name, subject, kid, ttl
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update(kid=kid, use="sig", alg="RS256")
        body = json.dumps({"keys": [public]}).encode()

        class Jwks(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        #: Where its JWKS is served.
        self.jwks_url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def sign(self, signer=None, **claims) -> str:
        """A token of this issuer for its audience ``hydra``; ``claims`` add to or override
        iss, aud, sub and exp; ``signer``: another private key (a forgery)."""
        body = {"iss": self.name, "aud": "hydra", "sub": self.subject, "exp": time.time() + self.ttl, **claims}
        return jwt.encode(body, signer or self.key, algorithm="RS256", headers={"kid": self.kid})

    def close(self) -> None:
        self._server.shutdown()
