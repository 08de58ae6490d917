"""Tokens and secrets on the real stack, through the gunicorn API: a token made with a token dies
with its maker; a webhook's headers and body never come back out (REST, the CLI, gRPC, the
console) and survive an update that leaves them out; role keys and namespace names are checked
like a job's; a namespace's limits can be deleted; signing out of the console ends the session
for every copy of its cookie; what gunicorn refuses itself is answered in the one error shape."""

from __future__ import annotations

import html
import json
import re
import socket
from datetime import datetime
from urllib.parse import quote, urlsplit

import grpc
import pytest
import requests
from click.testing import CliRunner

from hydra.cli import main
from hydra.store.jobs import JobStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from tests.helpers import job_body, unique, wait_until

NS = "secrets-a"
SECRETS = ("Bearer hook-s3cret", "hunter2-body")
BAD_NAMES = ["$where", "a.b", "a\u0000b", "☃", "Team-A"]


@pytest.fixture(scope="module")
def url(stack) -> str:
    stack.start_api()
    return stack.api_url


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def call(url: str, method: str, path: str, secret: str, **kwargs) -> requests.Response:
    return requests.request(method, url + path, headers=bearer(secret), timeout=30, **kwargs)


def make_token(url: str, maker: str, **body) -> dict:
    answer = call(url, "POST", "/tokens/", maker, json={"name": unique("tok"), **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def hydra_cli(url: str, token: str, *args: str):
    """``hydra <group> <command> --api-url URL --token TOKEN --json [args]``."""
    result = CliRunner().invoke(main, [*args[:2], "--api-url", url, "--token", token, "--json", *args[2:]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_a_token_made_with_a_token_stops_when_its_maker_expires(stack, url):
    # The report: a namespace admin token with expires_days 0.0001 made a token without expiry
    # that kept working, and minting, after the maker had expired.
    maker = make_token(url, stack.admin_token, roles={NS: "admin"}, expires_days=0.0001)
    made = make_token(url, maker["token"], roles={NS: "admin"})
    assert made["parent"] == maker["id"] and made["created_by"] == maker["user"]
    assert abs((moment(made["expires_at"]) - moment(maker["expires_at"])).total_seconds()) < 0.01
    assert call(url, "GET", "/jobs/", made["token"], params={"namespace": NS}).status_code == 200
    wider = call(url, "POST", "/tokens/", maker["token"], json={"name": "wider", "roles": {"*": "viewer"}})
    assert wider.status_code == 403  # no role the maker lacks

    wait_until(
        lambda: call(url, "GET", "/jobs/", made["token"]).status_code == 401,
        30,
        message="the minted token to stop with its maker",
    )
    assert call(url, "GET", "/jobs/", maker["token"]).status_code == 401
    again = call(url, "POST", "/tokens/", made["token"], json={"name": "more", "roles": {NS: "viewer"}})
    assert again.status_code == 401 and again.headers["Content-Type"] == "application/json"


def test_revoking_a_token_ends_the_tokens_made_with_it(stack, url):
    maker = make_token(url, stack.admin_token, roles={NS: "admin"})
    made = make_token(url, maker["token"], roles={NS: "operator"}, expires_days=1)
    assert made["parent"] == maker["id"] and moment(made["expires_at"]) > moment(made["created_at"])
    assert call(url, "GET", "/jobs/", made["token"]).status_code == 200
    assert call(url, "DELETE", f"/tokens/{maker['id']}", stack.admin_token).status_code == 200
    wait_until(
        lambda: call(url, "GET", "/jobs/", made["token"]).status_code == 401,
        10,
        message="a token made with a revoked one to be refused",
    )


def webhook(**http) -> dict:
    body = job_body("x", namespace=NS, executor="http", scheduled_at="2999-01-01T00:00:00Z")
    del body["command"], body["shell"]
    body["http"] = {
        "url": "https://hooks.example/notify",
        "headers": {"Authorization": SECRETS[0], "X-Trace": "t-1"},
        "body": {"password": SECRETS[1]},
        **http,
    }
    return body


def shown_nowhere(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def test_a_webhooks_headers_and_body_never_come_back_out(stack, url):
    created = call(url, "POST", "/jobs/", stack.admin_token, json=webhook())
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    one = call(url, "GET", f"/jobs/{job_id}", stack.admin_token)
    assert one.json()["http"]["headers"] == {"Authorization": "<redacted>", "X-Trace": "<redacted>"}
    assert one.json()["http"]["body"] == "<redacted>" and shown_nowhere(one.text)
    listing = call(url, "GET", "/jobs/", stack.admin_token, params={"namespace": NS, "limit": 200})
    assert job_id in {j["id"] for j in listing.json()} and shown_nowhere(listing.text)
    shown = hydra_cli(url, stack.admin_token, "job", "show", job_id)
    assert shown.exit_code == 0 and '"Authorization": "<redacted>"' in shown.output and shown_nowhere(shown.output)

    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as channel:
        job = hydra_pb2_grpc.HydraStub(channel).GetJob(
            hydra_pb2.GetJobRequest(job_id=job_id), metadata=(("authorization", f"Bearer {stack.admin_token}"),)
        )
    assert dict(job.http.headers) == {"Authorization": "<redacted>", "X-Trace": "<redacted>"}
    assert shown_nowhere(str(job))

    console = requests.Session()
    sign_in(console, url, stack.admin_token)
    for page in (f"/ui/jobs/{job_id}", f"/ui/jobs/{job_id}/edit", f"/ui/jobs?namespace={NS}"):
        answer = console.get(url + page, timeout=30)
        assert answer.status_code == 200 and shown_nowhere(answer.text), page

    # An update that leaves them out keeps them; the new URL is taken.
    changed = call(
        url, "PATCH", f"/jobs/{job_id}", stack.admin_token, json={"http": {"url": "https://hooks.example/v2"}}
    )
    assert changed.status_code == 200, changed.text
    stored = JobStore().get(job_id).http
    assert stored["url"] == "https://hooks.example/v2" and stored["headers"]["Authorization"] == SECRETS[0]
    assert stored["body"] == {"password": SECRETS[1]}
    edit = console.get(f"{url}/ui/jobs/{job_id}/edit", timeout=30)
    form = {"csrf_token": csrf_of(edit.text), "body": re.search(r"<textarea[^>]*>(.*?)</textarea>", edit.text, re.S)}
    assert form["body"], edit.text[:500]
    saved = console.post(
        f"{url}/ui/jobs/{job_id}/edit",
        data={"csrf_token": form["csrf_token"], "body": html.unescape(form["body"].group(1))},
        timeout=30,
        allow_redirects=False,
    )
    assert saved.status_code in (302, 303), saved.text[:500]
    assert JobStore().get(job_id).http["headers"]["Authorization"] == SECRETS[0]  # the form sends back no secret


@pytest.mark.parametrize("name", BAD_NAMES)
def test_role_keys_and_namespace_names_are_checked_like_a_jobs(stack, url, name):
    made = call(url, "POST", "/tokens/", stack.admin_token, json={"name": "bad", "roles": {name: "viewer"}})
    assert made.status_code == 422 and "roles" in made.json()["errors"]["json"], made.text
    path = f"/namespaces/{quote(name, safe='')}"
    for method, body in (("GET", None), ("PUT", {"max_running": 1}), ("DELETE", None)):
        answer = call(url, method, path, stack.admin_token, json=body)
        assert answer.status_code == 422, (method, answer.text)
        assert "lowercase letters" in answer.json()["errors"]["path"]["namespace"][0]


def test_a_namespaces_limits_can_be_deleted_through_rest_and_the_cli(stack, url):
    ns = unique("ns").lower().replace("_", "-")[:60]
    assert call(url, "PUT", f"/namespaces/{ns}", stack.admin_token, json={"max_running": 2}).status_code == 200
    deleted = call(url, "DELETE", f"/namespaces/{ns}", stack.admin_token)
    assert deleted.status_code == 204
    limits = call(url, "GET", f"/namespaces/{ns}", stack.admin_token).json()
    assert (limits["max_running"], limits["max_queued"], limits["updated_by"]) == (None, None, None)
    viewer = make_token(url, stack.admin_token, roles={ns: "viewer"})
    assert call(url, "DELETE", f"/namespaces/{ns}", viewer["token"]).status_code == 403

    assert call(url, "PUT", f"/namespaces/{ns}", stack.admin_token, json={"max_queued": 7}).status_code == 200
    result = hydra_cli(url, stack.admin_token, "namespace", "delete", ns)
    assert result.exit_code == 0, result.output
    assert call(url, "GET", f"/namespaces/{ns}", stack.admin_token).json()["max_queued"] is None
    trail = call(url, "GET", "/audit/", stack.admin_token, params={"target": ns}).json()
    assert sorted(e["action"] for e in trail) == ["namespace.delete"] * 2 + ["namespace.limits"] * 2


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def sign_in(session: requests.Session, url: str, secret: str) -> None:
    form = session.get(url + "/ui/login", timeout=30)
    answer = session.post(
        url + "/ui/login", data={"token": secret, "csrf_token": csrf_of(form.text)}, timeout=30, allow_redirects=False
    )
    assert answer.status_code == 302, answer.text[:500]


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(stack, url):
    browser = requests.Session()
    sign_in(browser, url, stack.admin_token)
    taken = browser.cookies.get("hydra_console", path="/ui")
    copy = {"Cookie": f"hydra_console={taken}"}
    assert requests.get(url + "/ui/jobs", headers=copy, timeout=30, allow_redirects=False).status_code == 200
    page = browser.get(url + "/ui/jobs", timeout=30)
    out = browser.post(url + "/ui/logout", data={"csrf_token": csrf_of(page.text)}, timeout=30, allow_redirects=False)
    assert out.status_code == 302
    # gunicorn runs two processes: every one of them refuses the copy now, page and JSON alike.
    for _ in range(6):
        page = requests.get(url + "/ui/jobs", headers=copy, timeout=30, allow_redirects=False)
        assert page.status_code == 302 and "/ui/login" in page.headers["Location"]
        assert requests.get(url + "/ui/runs/x/output.json", headers=copy, timeout=30).status_code == 401
    sign_in(browser, url, stack.admin_token)  # signing in again works
    assert browser.get(url + "/ui/jobs", timeout=30, allow_redirects=False).status_code == 200


def raw_request(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is to the API; (status, headers, body) of the answer."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("long request line", 414, "longer than 4094 bytes"),
        ("long header", 431, "longer than 8190 bytes"),
        ("many headers", 431, "more than 100"),
        ("garbage", 400, "Invalid"),
    ],
)
def test_what_gunicorn_refuses_is_answered_in_the_one_error_shape(stack, url, case, status, says):
    if case == "long request line":
        answer = requests.get(url + "/jobs/", params={"q": "a" * 5000}, headers=bearer(stack.admin_token), timeout=30)
        code, headers, body = answer.status_code, answer.headers, answer.content
    elif case == "long header":
        answer = requests.get(url + "/jobs/", headers=bearer("x" * 100_000), timeout=30)
        code, headers, body = answer.status_code, answer.headers, answer.content
    elif case == "many headers":
        many = {f"X-H{i}": "1" for i in range(101)}
        answer = requests.get(url + "/jobs/", headers={**many, **bearer(stack.admin_token)}, timeout=30)
        code, headers, body = answer.status_code, answer.headers, answer.content
    else:
        code, headers, body = raw_request(url, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert code == status
    assert headers["Content-Type"] == "application/json" and int(headers["Content-Length"]) == len(body)
    shape = json.loads(body)
    assert set(shape) == {"code", "status", "message"} and shape["code"] == status, shape
    assert says in shape["message"], shape
