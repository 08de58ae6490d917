"""Control verbs and listings on the real stack: update, delete, pause/resume, trigger;
jobs and runs pages with cursors."""

from __future__ import annotations

from hydra.store.runs import RunStore
from tests.helpers import job_body, submit, unique, wait_run


def test_update_affects_future_runs_only(api, stack):
    created = submit(api, "echo v1")
    assert wait_run(created["run_id"]).stdout == "v1\n"
    job_id = created["job_id"]

    patched = api.patch(f"/jobs/{job_id}", json={"command": "echo v2", "priority": 80})
    assert patched.status_code == 200 and patched.json["command"] == "echo v2"
    assert patched.json["priority"] == 80 and patched.json["name"] == created_name(api, job_id)
    second = api.post(f"/jobs/{job_id}/trigger")
    assert second.status_code == 201
    run = wait_run(second.json["run_id"])
    assert run.stdout == "v2\n" and run.priority == 80
    assert RunStore().get(created["run_id"]).stdout == "v1\n"  # history untouched

    replaced = api.put(f"/jobs/{job_id}", json=job_body("echo v3", name="renamed"))
    assert replaced.status_code == 200 and replaced.json["name"] == "renamed"
    assert replaced.json["priority"] == 50  # PUT replaces the whole body: defaults again
    assert wait_run(api.post(f"/jobs/{job_id}/trigger").json["run_id"]).stdout == "v3\n"


def created_name(api, job_id):
    return api.get(f"/jobs/{job_id}").json["name"]


def test_invalid_updates_name_the_field_and_change_nothing(api, stack):
    job_id = submit(api, "echo keep")["job_id"]
    for method, body, field in (
        ("patch", {"priority": 101}, "priority"),
        ("patch", {"shell": "zsh"}, "shell"),
        ("patch", {"command": None}, "command"),  # merged body has nothing to run
        ("put", {"command": "x"}, "name"),
    ):
        response = getattr(api, method)(f"/jobs/{job_id}", json=body)
        assert response.status_code == 422, (body, response.json)
        assert field in response.json["errors"]["json"]
    assert api.get(f"/jobs/{job_id}").json["command"] == "echo keep"
    assert api.patch("/jobs/nope", json={"priority": 1}).status_code == 404


def test_delete_keeps_history_and_stops_everything_else(api, stack):
    user = unique("del")
    created = submit(api, "echo bye", user=user)
    wait_run(created["run_id"])
    job_id = created["job_id"]
    assert api.delete(f"/jobs/{job_id}").status_code == 204
    assert api.delete(f"/jobs/{job_id}").status_code == 204  # idempotent

    assert api.get(f"/jobs/{job_id}").json["deleted_at"]
    assert api.get(f"/runs/{created['run_id']}").json["stdout"] == "bye\n"
    assert [r["id"] for r in api.get(f"/jobs/{job_id}/runs").json] == [created["run_id"]]
    assert api.get("/jobs", query_string={"user": user}).json == []
    for verb in ("trigger", "pause", "resume"):
        assert api.post(f"/jobs/{job_id}/{verb}").status_code == 409
    assert api.patch(f"/jobs/{job_id}", json={"priority": 1}).status_code == 409


def test_delete_cancels_runs_that_have_not_started(api, stack):
    created = submit(api, "echo never", scheduled_at="2999-01-01T00:00:00Z")
    assert api.delete(f"/jobs/{created['job_id']}").status_code == 204
    assert RunStore().get(created["run_id"]).status == "cancelled"


def test_pause_and_resume_need_a_schedule(api, stack):
    plain = submit(api, "echo plain")["job_id"]
    assert api.post(f"/jobs/{plain}/pause").status_code == 409
    cron = submit(api, "echo tick", schedule="0 0 1 1 *")
    assert cron["status"] == "scheduled" and cron["run_id"] is None and cron["scheduled_at"]
    paused = api.post(f"/jobs/{cron['job_id']}/pause").json
    assert paused["paused"] is True and paused["next_run_at"] is None
    resumed = api.post(f"/jobs/{cron['job_id']}/resume").json
    assert resumed["paused"] is False and resumed["next_run_at"].startswith(cron["scheduled_at"][:10])
    # a paused cron job can still be run by hand
    api.post(f"/jobs/{cron['job_id']}/pause")
    assert wait_run(api.post(f"/jobs/{cron['job_id']}/trigger").json["run_id"]).stdout == "tick\n"


def test_jobs_list_pages_with_a_cursor_and_filters(api, stack):
    user = unique("pager")
    ids = [submit(api, "echo page", user=user)["job_id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"user": user, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.get("/jobs", query_string=query)
        assert response.status_code == 200
        seen += [job["id"] for job in response.json]
        pages += 1
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert pages == 3 and seen == list(reversed(ids))  # newest first, each exactly once

    for run_id in [r["id"] for job_id in ids for r in api.get(f"/jobs/{job_id}/runs").json]:
        wait_run(run_id)
    done = api.get("/jobs", query_string={"user": user, "status": "completed"}).json  # the usual word for succeeded
    assert sorted(j["id"] for j in done) == sorted(ids)
    assert api.get("/jobs", query_string={"user": user, "status_filter": "failed"}).json == []
    bad = api.get("/jobs", query_string={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]["query"]


def test_runs_of_a_job_page_newest_first(api, stack):
    created = submit(api, "echo run")
    job_id = created["job_id"]
    run_ids = [created["run_id"]] + [api.post(f"/jobs/{job_id}/trigger").json["run_id"] for _ in range(2)]
    for run_id in run_ids:
        wait_run(run_id)
    first = api.get(f"/jobs/{job_id}/runs", query_string={"limit": 2})
    assert [r["id"] for r in first.json] == run_ids[:0:-1]
    rest = api.get(f"/jobs/{job_id}/runs", query_string={"limit": 2, "cursor": first.headers["X-Next-Cursor"]})
    assert [r["id"] for r in rest.json] == [run_ids[0]] and "X-Next-Cursor" not in rest.headers
    assert api.get(f"/runs/{run_ids[0]}").json["status"] == "succeeded"
