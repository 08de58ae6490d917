"""The web console (``/ui/``) on the real stack, through Flask's test client: sign-in and its
cookie, CSRF on every action, the same role checks as REST, bounded pages, placement
explained. (tests/browser/ drives the same pages in a real Chromium.)"""

from __future__ import annotations

import re

import pytest

from hydra.auth import tokens
from hydra.model.access import Role
from hydra.store.tokens import TokenStore
from tests.helpers import job_body, unique, wait_run

NS = "console-a"


@pytest.fixture(scope="module")
def secrets(stack) -> dict[str, str]:
    store = TokenStore()
    return {
        "admin": stack.admin_token,
        "viewer": tokens.issue(store, name="console-viewer", user="vera", roles={NS: Role.VIEWER}).secret,
        "operator": tokens.issue(store, name="console-op", user="otis", roles={NS: Role.OPERATOR}).secret,
    }


def browser(secret: str | None = None):
    """A fresh test client (its own cookie jar), signed in with ``secret`` when given."""
    from api import create_app

    client = create_app().test_client()
    if secret is not None:
        page = client.get("/ui/login")
        answer = client.post("/ui/login", data={"token": secret, "csrf_token": csrf(page)})
        assert answer.status_code == 302, answer.data
    return client


def csrf(page) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page.data)
    assert found, page.data[:500]
    return found.group(1).decode()


def test_pages_need_a_session_and_the_cookie_is_httponly_samesite(stack, secrets):
    anonymous = browser()
    assert anonymous.get("/ui/jobs").status_code == 302  # to the sign-in form
    assert anonymous.get("/ui/runs/x/output.json").status_code == 401
    assert anonymous.get("/jobs/").status_code == 401  # the REST API is not opened by the console
    page = anonymous.get("/ui/login")
    bad = anonymous.post("/ui/login", data={"token": "hydra_000000000000_nope", "csrf_token": csrf(page)})
    assert bad.status_code == 401 and b"unknown or malformed token" in bad.data

    answer = anonymous.post("/ui/login", data={"token": secrets["admin"], "csrf_token": csrf(page)})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/ui" in cookie and "Secure" not in cookie
    assert secrets["admin"].encode() not in answer.headers["Set-Cookie"].encode()  # the credential is sealed
    assert anonymous.get("/ui/jobs").status_code == 200


def test_the_cookie_is_secure_under_tls(stack, secrets):
    client, tls = browser(), "https://localhost"
    page = client.get("/ui/login", base_url=tls)
    answer = client.post("/ui/login", data={"token": secrets["admin"], "csrf_token": csrf(page)}, base_url=tls)
    assert "Secure" in answer.headers["Set-Cookie"]
    behind_proxy = browser()
    page = behind_proxy.get("/ui/login")
    answer = behind_proxy.post(
        "/ui/login",
        data={"token": secrets["admin"], "csrf_token": csrf(page)},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in answer.headers["Set-Cookie"]


def test_every_action_needs_the_csrf_token(stack, secrets, api):
    job = api.post("/jobs/", json=job_body("echo hi")).json
    client = browser(secrets["admin"])
    for path in (f"/ui/jobs/{job['id']}/trigger", f"/ui/jobs/{job['id']}/delete", "/ui/submit", "/ui/logout"):
        assert client.post(path, data={}).status_code == 400, path
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 400, path
    assert api.get(f"/jobs/{job['id']}").json["deleted_at"] is None  # nothing happened


def test_a_viewer_sees_no_action_controls_and_is_refused_like_by_rest(stack, secrets, api):
    job = api.post("/jobs/", json=job_body("sleep 30", namespace=NS, schedule="*/5 * * * *")).json
    run = api.post(f"/jobs/{job['id']}/trigger").json
    viewer = browser(secrets["viewer"])
    page = viewer.get(f"/ui/jobs/{job['id']}")
    assert page.status_code == 200 and b"Next fire times" in page.data
    assert b"<button" not in page.data.replace(b'<button type="submit" class="link">Sign out</button>', b"")
    assert b"Cancel run" not in viewer.get(f"/ui/runs/{run['run_id']}").data
    token = csrf(page)
    for path in (f"/ui/jobs/{job['id']}/trigger", f"/ui/jobs/{job['id']}/pause", f"/ui/runs/{run['run_id']}/cancel"):
        assert viewer.post(path, data={"csrf_token": token}).status_code == 403, path
    rest = browser()
    assert (
        rest.post(f"/jobs/{job['id']}/trigger", headers={"Authorization": f"Bearer {secrets['viewer']}"}).status_code
        == 403
    )
    operator = browser(secrets["operator"])
    page = operator.get(f"/ui/runs/{run['run_id']}")
    assert b"Cancel run" in page.data
    assert operator.post(f"/ui/runs/{run['run_id']}/cancel", data={"csrf_token": csrf(page)}).status_code == 302
    assert wait_run(run["run_id"]).status == "cancelled"
    assert b"Delete" not in operator.get(f"/ui/jobs/{job['id']}").data  # deleting needs admin
    api.delete(f"/jobs/{job['id']}")


def test_placement_is_explained_worker_by_worker(stack, secrets, api):
    pending = api.post("/jobs/", json=job_body("true", affinity={"os": ["linux"], "tags": ["tpu"]})).json
    assert pending["status"] == "pending"
    page = browser(secrets["admin"]).get(f"/ui/runs/{pending['run_id']}/placement")
    assert page.status_code == 200
    assert b"gpu1" in page.data and b"lacks tag tpu" in page.data and b"cpu1" in page.data
    api.post(f"/runs/{pending['run_id']}/cancel")


def test_the_submit_form_shows_field_errors_and_submits(stack, secrets):
    client = browser(secrets["admin"])
    token = csrf(client.get("/ui/submit"))
    bad = client.post("/ui/submit", data={"csrf_token": token, "name": "x", "command": "true", "timeout": "soon"})
    assert bad.status_code == 422
    assert re.search(rb'id="timeout-error"[^>]*>\s*<li>Not a valid number.</li>', bad.data), bad.data
    name = unique("form")
    good = client.post(
        "/ui/submit", data={"csrf_token": token, "name": name, "command": "echo from-the-form", "os": "linux"}
    )
    assert good.status_code == 302 and "/ui/runs/" in good.headers["Location"]
    run_id = good.headers["Location"].rsplit("/", 1)[1]
    assert wait_run(run_id).stdout == "from-the-form\n"
    listing = client.get(f"/ui/jobs?q={name}")
    assert listing.status_code == 200 and name.encode() in listing.data


def test_every_page_and_chart_answers(stack, secrets, api):
    job = api.post("/jobs/", json=job_body("echo chart")).json
    wait_run(job["run_id"])
    client = browser(secrets["admin"])
    for path in (
        "/ui/",
        "/ui/jobs?status=succeeded",
        f"/ui/jobs/{job['id']}",
        f"/ui/jobs/{job['id']}/edit",
        f"/ui/runs/{job['run_id']}",
        "/ui/workers",
        "/ui/dead-letters",
        "/ui/charts?minutes=15",
    ):
        answer = client.get(path, follow_redirects=True)
        assert answer.status_code == 200, (path, answer.data[:300])
    runs = client.get("/ui/charts/runs.json?minutes=15").json
    assert sum(runs["by_status"].get("succeeded", [])) >= 1 and len(runs["starts"]) <= 120
    assert sum(b["count"] for b in runs["durations"]) >= 1
    queues = client.get("/ui/charts/queues.json").json

    assert any(q["worker"].startswith("gpu1") for q in queues)
    output = client.get(f"/ui/runs/{job['run_id']}/output.json?after=-1&wait=0").json
    assert output["ended"] and "".join(c["text"] for c in output["chunks"]) == "chart\n"
    assert client.get("/ui/jobs/nope").status_code == 404
    assert client.get("/ui/jobs?status=bogus").status_code == 200  # named beside the filter, not a 500


def test_the_attempt_chain_links_retries_and_dead_letters_can_be_retried(stack, secrets, api):
    job = api.post("/jobs/", json=job_body("exit 3", retries=1, backoff={"base": 0.2, "jitter": 0})).json
    first = wait_run(job["run_id"])
    assert first.status == "retrying"
    second = wait_run(_next_attempt(api, job["id"]))
    assert second.status == "dead_letter" and second.retry_of == first.id
    client = browser(secrets["admin"])
    page = client.get(f"/ui/runs/{second.id}").data.decode()
    timeline = page[page.index('id="timeline"') :]
    assert f"/ui/runs/{first.id}" in timeline and "attempt 1" in timeline and "attempt 2" in timeline
    assert "queued" in timeline and "placed" in timeline and "started" in timeline and "ended" in timeline
    assert f'follows <a href="/ui/runs/{first.id}"' in timeline
    earlier = client.get(f"/ui/runs/{first.id}").data.decode()
    assert f"/ui/runs/{second.id}" in earlier[earlier.index('id="timeline"') :]  # linked both ways
    letters = client.get("/ui/dead-letters")
    assert second.id[:13].encode() in letters.data and b">Retry</button>" in letters.data
    retried = client.post(f"/ui/runs/{second.id}/retry", data={"csrf_token": csrf(letters)})
    assert retried.status_code == 302
    third = wait_run(retried.headers["Location"].rsplit("/", 1)[1])
    assert third.retry_of == second.id and third.attempt == 3
    assert second.id[:13].encode() not in client.get("/ui/dead-letters").data  # retried: off the list


def _next_attempt(api, job_id: str) -> str:
    from tests.helpers import wait_until

    def found():
        runs = api.get(f"/jobs/{job_id}/runs").json
        return next((r["id"] for r in runs if r["attempt"] == 2), None)

    return wait_until(found, 30, message="the second attempt")


def test_job_actions_edit_pause_resume_trigger_delete(stack, secrets, api):
    job = api.post("/jobs/", json=job_body("echo v1", schedule="0 4 * * *", timezone="Asia/Tokyo")).json
    client = browser(secrets["admin"])
    page = client.get(f"/ui/jobs/{job['id']}")
    assert b"+09:00" in page.data  # fire times in the job's zone
    token = csrf(page)
    edit = client.get(f"/ui/jobs/{job['id']}/edit")
    assert b"&#34;command&#34;: &#34;echo v1&#34;" in edit.data or b'"command": "echo v1"' in edit.data
    bad = client.post(f"/ui/jobs/{job['id']}/edit", data={"csrf_token": token, "body": '{"priority": 500}'})
    assert bad.status_code == 422 and b"priority" in bad.data
    good = client.post(f"/ui/jobs/{job['id']}/edit", data={"csrf_token": token, "body": '{"command": "echo v2"}'})
    assert good.status_code == 302 and api.get(f"/jobs/{job['id']}").json["command"] == "echo v2"
    assert client.post(f"/ui/jobs/{job['id']}/pause", data={"csrf_token": token}).status_code == 302
    assert api.get(f"/jobs/{job['id']}").json["paused"] is True
    assert b"Resume schedule" in client.get(f"/ui/jobs/{job['id']}").data
    assert client.post(f"/ui/jobs/{job['id']}/resume", data={"csrf_token": token}).status_code == 302
    assert api.get(f"/jobs/{job['id']}").json["paused"] is False
    triggered = client.post(f"/ui/jobs/{job['id']}/trigger", data={"csrf_token": token})
    assert wait_run(triggered.headers["Location"].rsplit("/", 1)[1]).stdout == "v2\n"
    assert client.post(f"/ui/jobs/{job['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert api.get(f"/jobs/{job['id']}").json["deleted_at"] is not None
    again = client.post(f"/ui/jobs/{job['id']}/trigger", data={"csrf_token": token})
    assert again.status_code == 409 and b"deleted" in again.data  # a page, not a 500
