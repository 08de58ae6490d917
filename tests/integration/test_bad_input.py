"""Bad input gets a 422 naming the field, never a 500 and never a half-written job; a stored
record that cannot be rendered never breaks a listing (on the real API, MongoDB and Redis)."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from hydra import names
from hydra.model.records import Job
from hydra.store.jobs import JobStore
from hydra.store.mongo import get_database
from hydra.store.reindex import Reindexer
from hydra.store.runs import RunStore
from tests.helpers import job_body, unique


def post_raw(api, text: str):
    return api.post("/jobs/", data=text, content_type="application/json")


def _count(api) -> int:
    return get_database()[names.JOB_DEFINITIONS].count_documents({})


def _refused(response, field: str, location: str = "json") -> list[str]:
    assert response.status_code == 422, (response.status_code, response.get_data(as_text=True)[:300])
    errors = response.json["errors"][location]
    assert field in errors, errors
    return errors[field]


def test_a_cron_expression_that_never_fires_is_refused(api, stack):
    before = _count(api)
    for expr in ("0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"):
        messages = _refused(api.post("/jobs/", json=job_body("echo", schedule=expr)), "schedule")
        assert "never fires" in messages[0]
    assert api.post("/jobs/", json=job_body("echo", schedule="0 0 29 2 *")).status_code == 201  # leap days exist
    assert _count(api) == before + 1


@pytest.mark.parametrize("depth", [40, 5000, 200_000])
def test_nesting_deeper_than_the_limit_is_refused_naming_the_field(api, stack, depth):
    before = _count(api)
    text = json.dumps(job_body("echo"))[:-1] + ', "env": ' + "[" * depth + "]" * depth + "}"
    assert "deeper than 32" in _refused(post_raw(api, text), "env")[0]
    body = {"http": {"url": "http://example.com/", "body": json.loads("[" * 40 + "]" * 40)}}
    text = json.dumps({**job_body("x"), "executor": "http", **body, "command": None, "shell": None})
    assert "deeper than 32" in _refused(post_raw(api, text), "http")[0]
    assert _count(api) == before


def test_a_deeply_nested_cursor_is_refused(api, stack):
    for depth in (100_000, 300, 150):
        token = base64.urlsafe_b64encode(("[" * depth + "]" * depth).encode()).decode().rstrip("=")
        assert "not a cursor" in _refused(api.get("/jobs/", query_string={"cursor": token}), "cursor", "query")[0]


@pytest.mark.parametrize(
    "patch, field",
    [
        ('"command": "echo \\ud800"', "command"),
        ('"env": {"A": "x\\udfff"}', "env"),
        ('"command": "echo a\\u0000b"', "command"),
        ('"env": {"A": "nul\\u0000"}', "env"),
        ('"name": "\\ud83d"', "name"),
    ],
)
def test_lone_surrogates_and_nul_are_refused(api, stack, patch, field):
    before = _count(api)
    body = job_body("echo")
    key = patch.split(":")[0].strip('"')
    body.pop(key, None)
    text = json.dumps(body)[:-1] + ", " + patch + "}"
    messages = _refused(post_raw(api, text), field)
    assert "surrogate" in messages[0] or "NUL" in messages[0]
    assert _count(api) == before


@pytest.mark.parametrize("key", ["$where", "X.Forwarded", "bad\u0000key", "Spaced Name"])
def test_bad_header_names_are_refused(api, stack, key):
    body = job_body("x", executor="http", http={"url": "http://example.com/", "headers": {key: "1"}})
    del body["command"], body["shell"]
    _refused(api.post("/jobs/", json=body), "http")


def test_a_header_value_cannot_inject_headers(api, stack):
    body = job_body("x", executor="http", http={"url": "http://example.com/", "headers": {"X-A": "1\r\nX-B: 2"}})
    del body["command"], body["shell"]
    _refused(api.post("/jobs/", json=body), "http")


def test_any_json_webhook_body_is_stored_and_rendered(api, stack):
    payload = {"matrix": [[1, 2], [3, [4]]], "$set": {"a.b": True}, "n": 1.5}
    body = job_body("x", executor="http", http={"url": "http://example.com/", "body": payload})
    del body["command"], body["shell"]
    body["scheduled_at"] = "2999-01-01T00:00:00Z"  # stored, not run
    created = api.post("/jobs/", json=body)
    assert created.status_code == 201, created.json
    assert JobStore().get(created.json["id"]).http["body"] == payload  # stored as sent
    assert api.get(f"/jobs/{created.json['id']}").json["http"]["body"] == "<redacted>"  # write-only
    assert api.get("/jobs/", query_string={"limit": 5}).status_code == 200


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
)
def test_out_of_range_datetimes_are_refused(api, stack, value):
    messages = _refused(api.post("/jobs/", json=job_body("echo", scheduled_at=value)), "scheduled_at")
    assert "out of range" in messages[0] or "Not a valid" in messages[0]


@pytest.mark.parametrize(
    "patch, field",
    [('"timeout": NaN', "timeout"), ('"http": {"url": "http://example.com/", "body": [Infinity]}', "http")],
)
def test_numbers_json_does_not_have_are_refused(api, stack, patch, field):
    body = job_body("echo")
    if field == "http":
        body.update(executor="http")
        del body["command"], body["shell"]
    text = json.dumps(body)[:-1] + ", " + patch + "}"
    _refused(post_raw(api, text), field)


def test_a_stored_record_that_cannot_be_rendered_is_skipped_flagged_and_logged(api, stack, caplog):
    user = unique("render")
    good = api.post("/jobs/", json=job_body("echo ok", user=user, schedule="*/5 * * * *")).json["id"]
    collection = get_database()[names.JOB_DEFINITIONS]
    # As an older version stored them: a cron that never fires (shown: it has no next run), and
    # a timeout that is no number (cannot be shown).
    never = collection.find_one({"_id": good})
    never.update(_id=unique("never"), schedule="0 0 31 2 *")
    broken = dict(never, _id=unique("broken"), schedule=None, timeout="soon")
    collection.insert_many([never, broken])
    # ... and as the controller's rebuild of the Redis indexes files them after the upgrade
    Reindexer(RunStore()).file_jobs([Job.from_doc(never), Job.from_doc(broken)])
    with caplog.at_level(logging.WARNING, logger="hydra.control.rendering"):
        listed = api.get("/jobs/", query_string={"user": user, "limit": 100})
    assert listed.status_code == 200 and {j["id"] for j in listed.json} == {good, never["_id"]}
    assert next(j for j in listed.json if j["id"] == never["_id"])["next_run_at"] is None
    skipped = listed.headers["X-Skipped-Records"]
    assert skipped.startswith("1: ") and broken["_id"] in skipped
    assert "stored record cannot be rendered" in caplog.text
    assert collection.find_one({"_id": broken["_id"]})["unrenderable"].startswith("ValueError")
    alone = api.get(f"/jobs/{broken['_id']}")
    assert alone.status_code == 409 and "flagged" in alone.json["message"]
