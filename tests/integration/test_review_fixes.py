"""Small fixes from a review, each on the real stack: a stored cron schedule that never fires
does not break the console's pages or the job's answers; PUT /namespaces/{ns} without a body is
a 422 naming the body; GET /export/runs checks its namespace argument and refuses arguments it
does not know."""

from __future__ import annotations

from hydra import names
from hydra.store.mongo import get_database
from tests.helpers import submit, unique
from tests.integration.test_console import browser

#: 31 February: croniter accepts the expression, and it never fires.
NEVER = "0 0 31 2 *"


def test_a_stored_schedule_that_never_fires_does_not_break_the_console_or_the_api(api, stack):
    """The API refuses such a schedule now, but a job stored before that rule (or by another
    version) still has it: the listing, its page and its answers show it with no next tick."""
    name = unique("february")
    job_id = submit(api, "true", name=name, schedule="0 0 28 2 *")["job_id"]
    get_database()[names.JOB_DEFINITIONS].update_one({"_id": job_id}, {"$set": {"schedule": NEVER}})
    console = browser(stack.admin_token)
    listing = console.get(f"/ui/jobs?q={name}")
    assert listing.status_code == 200 and name in listing.data.decode()
    page = console.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200 and NEVER in page.data.decode()
    shown = api.get(f"/jobs/{job_id}")
    assert shown.status_code == 200 and shown.json["schedule"] == NEVER and shown.json["next_run_at"] is None
    assert api.delete(f"/jobs/{job_id}").status_code in (200, 204)


def test_put_namespace_limits_without_a_body_is_a_422_naming_the_body(api, stack):
    """Not a 500, and not a 200 that silently set both limits back to the defaults."""
    before = api.get("/namespaces/default").json
    for kwargs in ({}, {"data": "", "content_type": "application/json"}, {"json": {}}, {"json": None}):
        answer = api.put("/namespaces/default", **kwargs)
        assert answer.status_code == 422, (kwargs, answer.status_code, answer.json)
        problems = answer.json["errors"]["json"]["_schema"]
        assert problems and any("body" in p or "Invalid input type" in p for p in problems), answer.json
    assert api.get("/namespaces/default").json["updated_at"] == before["updated_at"]  # nothing was written
    assert "body is required" in api.put("/namespaces/default").json["errors"]["json"]["_schema"][0]


def test_export_runs_checks_its_namespace_and_refuses_unknown_arguments(api, stack):
    for bad in ("Not_A_Namespace", "a" * 64, "-lead"):
        answer = api.get("/export/runs", query_string={"namespace": bad, "older_than": 0})
        assert answer.status_code == 422, (bad, answer.status_code)
        assert "namespace" in answer.json["errors"]["query"], answer.json
    typo = api.get("/export/runs", query_string={"older": 0})  # meant older_than
    assert typo.status_code == 422 and "older" in typo.json["errors"]["query"], typo.json
    good = api.get("/export/runs", query_string={"namespace": "default", "older_than": 0})
    assert good.status_code == 200 and good.mimetype == "application/x-ndjson"


def test_a_stored_job_that_cannot_be_rendered_is_skipped_by_the_console_lists_not_a_409(api, stack):
    """As the REST listing skips (and flags) it: the console's job list and home page still answer."""
    from hydra.model.records import Job
    from hydra.store.reindex import Reindexer
    from hydra.store.runs import RunStore

    name = unique("render")
    good = submit(api, "true", name=name, schedule="*/5 * * * *")["job_id"]
    collection = get_database()[names.JOB_DEFINITIONS]
    broken = dict(collection.find_one({"_id": good}), _id=unique("broken"), timeout="soon")  # as stored long ago
    collection.insert_one(broken)
    Reindexer(RunStore()).file_jobs([Job.from_doc(broken)])
    console = browser(stack.admin_token)
    listing = console.get(f"/ui/jobs?q={name}")
    assert listing.status_code == 200 and good in listing.data.decode()
    assert broken["_id"] not in listing.data.decode()
    assert console.get("/ui/jobs").status_code == 200 and console.get("/ui/").status_code == 200
    assert collection.find_one({"_id": broken["_id"]})["unrenderable"]
    collection.delete_one({"_id": broken["_id"]})
    assert api.delete(f"/jobs/{good}").status_code in (200, 204)
