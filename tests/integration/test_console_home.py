"""The console a team lives in, on the real stack (Flask's test client; tests/browser drives the
same pages in Chromium): the home page's numbers and links, the jobs list with each job's last
run, next run and success rate (sortable), the job page's settings in words and its history,
a viewer who gets no form it cannot submit, and a token made for a named user."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from hydra.auth import tokens
from hydra.model.access import Role
from hydra.store.tokens import TokenStore
from hydrastack import REPO, venv_bin
from tests.helpers import job_body, unique, wait_run, wait_until
from tests.integration.test_console import browser, csrf


@pytest.fixture(scope="module")
def team(stack, api):
    """A namespace of its own with one job of each fate, and a viewer made for a named user
    by the admin through the CLI (``hydra token create --user``)."""
    ns = unique("home")
    made = {
        "ok": api.post("/jobs/", json=job_body("sleep 0.3", name="a-ok", namespace=ns)).json,
        "bad": api.post("/jobs/", json=job_body("exit 2", name="b-bad", namespace=ns)).json,
        "dead": api.post(
            "/jobs/",
            json=job_body(
                "exit 3", name="c-dead", namespace=ns, retries=1, backoff={"base": 0.2, "cap": 30, "jitter": 0}
            ),
        ).json,
        "cron": api.post(
            "/jobs/",
            json=job_body(
                "true",
                name="d-cron",
                namespace=ns,
                schedule="0 2 * * *",
                affinity={"os": ["linux"], "tags": ["gpu"], "allowed_users": ["tester", "ana"]},
            ),
        ).json,
    }
    for key in ("ok", "bad"):
        wait_run(made[key]["run_id"])

    def dead_letter():
        runs = api.get(f"/jobs/{made['dead']['id']}/runs").json
        return any(r["status"] == "dead_letter" for r in runs)

    wait_until(dead_letter, 30, message="the dead letter")
    stack.start_api()
    user = unique("vic")
    env = {**os.environ, "HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    done = subprocess.run(
        [str(venv_bin() / "hydra"), "token", "create", "--json", "--name", "team viewer", "--user", user,
         "--role", f"{ns}=viewer"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    viewer = json.loads(done.stdout)
    assert viewer["user"] == user
    return {"ns": ns, "jobs": made, "viewer": viewer, "user": user}


def number(page, ident: str) -> str:
    found = re.search(rf'id="{ident}">([^<]*)<'.encode(), page.data)
    assert found, ident
    return found.group(1).decode().strip()


def rows(page) -> list[str]:
    """The job ids of a jobs page, in the order shown."""
    return [m.decode() for m in re.findall(rb'<tr data-job="([^"]+)"', page.data)]


def test_the_home_page_counts_what_the_caller_may_see_and_links_to_each_list(stack, team):
    viewer = browser(team["viewer"]["token"])
    page = viewer.get("/ui/")
    assert page.status_code == 200
    assert f'<span id="who">{team["user"]}</span>'.encode() in page.data  # the viewer reads as itself
    assert number(page, "failing-count") == "2"  # b-bad failed, c-dead dead-lettered
    assert number(page, "runs-total") == "4"  # a-ok, b-bad, c-dead's retried attempt and its dead letter
    outcomes = page.data[page.data.index(b'id="runs-by-outcome"') :].split(b"</ul>")[0].decode()
    for word in ("succeeded", "failed", "retrying", "dead_letter"):
        assert f'data-status="{word}"' in outcomes
    assert number(page, "dead-count") == "1"
    failing = page.data[page.data.index(b'id="failing-jobs"') :].split(b"</table>")[0].decode()
    assert "c-dead" in failing and "b-bad" in failing and "a-ok" not in failing
    assert failing.index("c-dead") < failing.index("b-bad")  # the latest failure first
    assert int(number(page, "workers-online")) >= 2
    for link in (
        "/ui/jobs?status=failed",
        "/ui/jobs?status=dead_letter",
        "/ui/dead-letters",
        "/ui/workers",
        "/ui/charts",
    ):
        assert f'href="{link}'.encode() in page.data, link
    assert b'href="/ui/submit"' not in page.data  # a viewer may submit nowhere: no link to the form
    admin = browser(stack.admin_token).get("/ui/")
    assert admin.status_code == 200 and int(number(admin, "runs-total")) >= 4
    assert b'href="/ui/submit"' in admin.data


def test_the_jobs_list_shows_last_run_next_run_and_success_and_sorts_the_page(stack, team):
    client = browser(team["viewer"]["token"])
    page = client.get(f"/ui/jobs?namespace={team['ns']}")
    assert page.status_code == 200
    jobs = team["jobs"]
    html = page.data.decode()

    def cell(key: str, column: str) -> str:
        row = html[html.index(f'<tr data-job="{jobs[key]["id"]}"') :].split("</tr>")[0]
        return re.sub(
            r"\s+", " ", re.sub(r"<[^>]+>", " ", row.split(f'class="{column}">')[1].split("</td>")[0])
        ).strip()

    assert cell("ok", "last-run").startswith("✓ succeeded 20") and cell("ok", "last-run").endswith(" s")
    assert cell("ok", "success") == "100% of 1" and cell("bad", "success") == "0% of 1"
    assert cell("dead", "success") == "0% of 2" and cell("dead", "last-run").startswith("☠ dead_letter")
    assert cell("cron", "last-run") == "—" and cell("cron", "success") == "—"
    assert re.fullmatch(r"20\d\d-\d\d-\d\d 02:00:00Z cron 0 2 \* \* \* UTC", cell("cron", "next-run"))
    assert cell("ok", "next-run") == "—"
    by_name = rows(client.get(f"/ui/jobs?namespace={team['ns']}&sort=name"))
    assert by_name == [jobs[k]["id"] for k in ("ok", "bad", "dead", "cron")]
    assert rows(client.get(f"/ui/jobs?namespace={team['ns']}&sort=name&order=desc")) == by_name[::-1]
    by_success = rows(client.get(f"/ui/jobs?namespace={team['ns']}&sort=success&order=desc"))
    assert by_success[0] == jobs["ok"]["id"] and by_success[-1] == jobs["cron"]["id"]  # never ran: last
    by_next = rows(client.get(f"/ui/jobs?namespace={team['ns']}&sort=next_run"))
    assert by_next[0] == jobs["cron"]["id"]  # the only one that runs again
    sorted_page = client.get(f"/ui/jobs?namespace={team['ns']}&sort=last_run")
    assert b'aria-sort="descending"' in sorted_page.data  # the column reads newest first
    assert rows(client.get(f"/ui/jobs?namespace={team['ns']}&sort=bogus")) == rows(page)  # as listed


def test_the_job_page_says_its_settings_in_words_and_charts_its_history(stack, team):
    client = browser(team["viewer"]["token"])
    cron = client.get(f"/ui/jobs/{team['jobs']['cron']['id']}").data.decode()
    assert "every day at 02:00 UTC (cron 0 2 * * *)" in cron
    assert "linux workers tagged gpu, users ana or tester" in cron  # (stored sorted)
    assert '"os"' not in cron and "&#34;os&#34;" not in cron  # no JSON
    dead = client.get(f"/ui/jobs/{team['jobs']['dead']['id']}").data.decode()
    assert "1 retry, exponential backoff from 0.2 s, at most 30 s, no jitter" in dead
    assert "0 of the last 2 runs (0%)" in dead
    history = client.get(f"/ui/jobs/{team['jobs']['dead']['id']}/history.json").json
    assert [(h["attempt"], h["status"]) for h in history] == [(1, "retrying"), (2, "dead_letter")]
    assert all(h["duration"] is not None and h["duration"] >= 0 for h in history)
    assert history[0]["ended"] <= history[1]["ended"]
    times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)">([^<]+)</time>', dead)
    assert times and all(re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ", shown) for _, _, shown in times)


def test_a_viewer_gets_no_form_it_cannot_submit(stack, team, api):
    viewer = browser(team["viewer"]["token"])
    page = viewer.get("/ui/submit")
    assert page.status_code == 403
    text = page.data.decode()
    assert "may not submit here" in text and team["user"] in text and f"{team['ns']}=viewer" in text
    assert '<form method="post" action="/ui/submit"' not in text
    token = csrf(viewer.get("/ui/"))
    posted = viewer.post("/ui/submit", data={"csrf_token": token, "name": "x", "command": "true"})
    assert posted.status_code == 403 and b"may not submit here" in posted.data
    edit = viewer.get(f"/ui/jobs/{team['jobs']['ok']['id']}/edit")
    assert edit.status_code == 403 and team["user"].encode() in edit.data  # its errors name it
    rest = api.post(
        "/jobs/",
        json=job_body("true", namespace=team["ns"]),
        headers={"Authorization": f"Bearer {team['viewer']['token']}"},
    )
    assert rest.status_code == 403 and repr(team["user"]) in rest.json["message"]


def test_a_token_for_a_named_user_needs_the_right_to_act_as_it_and_is_audited(stack, team, api):
    made = api.get(f"/audit/?target={team['viewer']['id']}").json
    [event] = [e for e in made if e["action"] == "token.create"]
    assert event["actor"] == "admin" and event["details"]["user"] == team["user"]
    assert event["details"]["roles"] == {team["ns"]: "viewer"}
    team_admin = tokens.issue(TokenStore(), name="ns admin", user=unique("ann"), roles={team["ns"]: Role.ADMIN}).secret
    as_admin = {"Authorization": f"Bearer {team_admin}"}
    other = api.post(
        "/tokens/", json={"name": "x", "user": "someone-else", "roles": {team["ns"]: "viewer"}}, headers=as_admin
    )
    assert other.status_code == 403  # it may not act as someone-else, so it may not mint its token
    own = api.post("/tokens/", json={"name": "x", "roles": {team["ns"]: "viewer"}}, headers=as_admin)
    assert own.status_code == 201 and own.json["user"].startswith("ann-")  # default: the caller itself
    bad = api.post("/tokens/", json={"name": "x", "user": "no spaces", "roles": {team["ns"]: "viewer"}})
    assert bad.status_code == 422 and "user" in bad.json["errors"]["json"]
