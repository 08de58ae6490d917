"""The console's OIDC sign-in (authorization code flow with PKCE) against a test issuer served
here: discovery, JWKS and token endpoints, with its own RSA key. The ID token is verified
like any JWT (hydra.auth.oidc), with the console's client id as audience and its nonce."""

from __future__ import annotations

import http.server
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hydra.auth import oidc
from hydra.settings import get_settings

CLIENT = "hydra-console"


@pytest.fixture
def issuer(stack, monkeypatch):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update(kid="console", use="sig", alg="RS256")
    codes: dict[str, dict] = {}  # code -> what the issuer would have learnt at its authorize page
    exchanged: list[dict] = []

    class Issuer(http.server.BaseHTTPRequestHandler):
        def answer(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/.well-known/openid-configuration":
                self.answer(
                    200,
                    {
                        "issuer": base,
                        "authorization_endpoint": f"{base}/authorize",
                        "token_endpoint": f"{base}/token",
                        "jwks_uri": f"{base}/jwks",
                    },
                )
            elif self.path == "/jwks":
                self.answer(200, {"keys": [public]})
            else:
                self.answer(404, {})

        def do_POST(self):
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
            exchanged.append(form)
            grant = codes.pop(form.get("code", ""), None)
            if grant is None or oidc.pkce_challenge(form.get("code_verifier", "")) != grant["challenge"]:
                self.answer(400, {"error": "invalid_grant"})
                return
            claims = {"iss": base, "aud": form["client_id"], "sub": "s-7", "exp": time.time() + 300, **grant["claims"]}
            self.answer(200, {"id_token": jwt.encode(claims, key, algorithm="RS256", headers={"kid": "console"})})

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Issuer)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HYDRA_OIDC_ISSUER", base)
    monkeypatch.setenv("HYDRA_OIDC_AUDIENCE", "hydra-api")
    monkeypatch.setenv("HYDRA_OIDC_CLIENT_ID", CLIENT)
    get_settings.cache_clear()
    yield codes, exchanged
    monkeypatch.undo()
    get_settings.cache_clear()
    server.shutdown()


def start(client, next_path="/ui/workers") -> dict:
    answer = client.get(f"/ui/login/oidc?next={next_path}")
    assert answer.status_code == 302
    url = urlsplit(answer.headers["Location"])
    assert url.path == "/authorize"
    return {k: v[0] for k, v in parse_qs(url.query).items()}


def test_signing_in_through_the_issuer_gives_the_roles_of_its_id_token(issuer):
    from api import create_app

    codes, exchanged = issuer
    client = create_app().test_client()
    assert b'id="oidc-sign-in"' in client.get("/ui/login").data
    asked = start(client)
    assert (
        asked["client_id"] == CLIENT and asked["code_challenge_method"] == "S256" and asked["response_type"] == "code"
    )
    assert asked["redirect_uri"].endswith("/ui/login/oidc/callback")
    codes["c-1"] = {
        "challenge": asked["code_challenge"],
        "claims": {"nonce": asked["nonce"], "preferred_username": "ida", "hydra_roles": ["oidc-ui=viewer"]},
    }
    back = client.get(f"/ui/login/oidc/callback?code=c-1&state={asked['state']}")
    assert back.status_code == 302 and back.headers["Location"].endswith("/ui/workers")
    assert exchanged[-1]["code_verifier"] and "client_secret" not in exchanged[-1]  # a public client: PKCE
    page = client.get("/ui/jobs")
    assert page.status_code == 200 and b'id="who">ida<' in page.data and b"oidc-ui=viewer" in page.data
    # The same code and state cannot be used again (the flow's secrets left the session).
    assert client.get(f"/ui/login/oidc/callback?code=c-1&state={asked['state']}").status_code == 302
    assert client.get("/ui/jobs").status_code == 200  # still the first session


def test_a_wrong_state_or_nonce_signs_nobody_in(issuer):
    from api import create_app

    codes, _ = issuer
    client = create_app().test_client()
    asked = start(client)
    codes["c-2"] = {
        "challenge": asked["code_challenge"],
        "claims": {"nonce": asked["nonce"], "preferred_username": "x"},
    }
    assert client.get("/ui/login/oidc/callback?code=c-2&state=forged").headers["Location"].endswith("/ui/login")
    assert client.get("/ui/jobs").status_code == 302  # to the sign-in form: nobody signed in
    asked = start(client)
    codes["c-3"] = {"challenge": asked["code_challenge"], "claims": {"nonce": "another", "preferred_username": "x"}}
    client.get(f"/ui/login/oidc/callback?code=c-3&state={asked['state']}")
    assert client.get("/ui/jobs").status_code == 302
