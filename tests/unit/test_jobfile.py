"""Job files (hydra.model.jobfile, hydra.control.apply): every field a user can set - every
field of JobSpecSchema, whatever it holds - goes out through an answer and a job file and
comes back the same; write-only values never leave; applying is idempotent by namespace and
name and checks every job before it changes anything."""

from __future__ import annotations

import json

import pytest

from api.schemas.jobs import JobSchema
from hydra.control import apply, verbs
from hydra.errors import Conflict, InvalidJob
from hydra.model import spec
from hydra.model.access import Principal, Role
from hydra.model.jobfile import SECRET, SETTABLE, changed_fields, exported, resolve, settable_fields, supply
from hydra.model.message import load_message
from hydra.model.redaction import REDACTED
from hydra.model.spec import JOB_FIELDS, JobSpecSchema, load_job
from hydra.store.job_names import JobNameStore

ADMIN = Principal(user="alice", roles={"default": Role.ADMIN, "team-a": Role.ADMIN}, via="token:alice")
OPERATOR = Principal(user="olga", roles={"default": Role.OPERATOR}, via="token:olga")

#: Jobs that together set every settable field to a value other than its default. A field
#: added to the job schema needs a sample here: test_every_settable_field_has_a_sample says so.
SAMPLES = [
    {
        "name": "nightly report",
        "user": "alice",
        "namespace": "team-a",
        "affinity": {"os": ["linux"], "tags": ["gpu"], "allowed_users": ["alice"]},
        "command": "./report.sh",
        "shell": "sh",
        "env": {"TOKEN": "s3cr3t", "MODE": "full"},
        "cwd": "/srv/reports",
        "retries": 3,
        "timeout": 120.5,
        "priority": 80,
        "schedule": "30 2 * * *",
        "timezone": "Europe/Paris",
        "misfire": "skip",
        "overlap": "forbid",
        "backoff": {"base": 2.0, "factor": 3.0, "cap": 60.0, "jitter": 0.2},
        "max_lost": 5,
        "params": [{"name": "TARGET", "default": "staging", "allowed": ["staging", "prod"]}],
    },
    {"name": "once", "command": "/usr/bin/env", "args": ["-u", "X"], "scheduled_at": "2099-03-04T05:06:07.123+00:00"},
    {
        "name": "hook",
        "executor": "http",
        "http": {
            "url": "http://127.0.0.1:9/hook",
            "method": "PUT",
            "headers": {"Authorization": "Bearer abc"},
            "body": {"a": [1, 2]},
            "timeout": 5.0,
        },
    },
]
#: Fields whose samples need other jobs (their ids), filled in by the test.
DEPENDANT_FIELDS = ("on_success", "on_failure", "on_completion")
#: Samples of job fields that other branches add, used once the job schema has them (a cron
#: job: nothing runs when it is stored).
LATER = {
    "monitor": True,
    "resources": {"memory_mb": 256, "cpu": 0.5},
    "max_concurrent": 2,
    "placement": {"mode": "all", "max_parallel": 2, "stop_on_failure": True},
    "notify": [
        {"on": ["failed"], "webhook": {"url": "http://127.0.0.1:9/n", "secret": "hmac-key-0123456789abcdef0123456789"}},
        {"on": ["succeeded"], "slack": {"url": "http://127.0.0.1:9/slack-credential"}},
    ],
}
LATER_JOB = {"name": "later", "command": "true", "schedule": "0 1 * * *"}
SAMPLES.append({**LATER_JOB, **{name: value for name, value in LATER.items() if name in JOB_FIELDS}})
#: Write-only values of the samples: never in an answer or a file.
SECRETS = ("s3cr3t", "Bearer abc", '"a": [1, 2]', "hmac-key-", "slack-credential")


def test_settable_fields_are_the_schemas_loadable_fields():
    assert SETTABLE == JOB_FIELDS == tuple(JobSpecSchema().fields)
    assert not set(SETTABLE) & set(spec.READ_ONLY_FIELDS)

    class WithState(JobSpecSchema):
        from marshmallow import fields

        shown = fields.String(dump_only=True)

    assert "shown" not in settable_fields(WithState)


def test_the_read_only_fields_are_what_an_answer_shows_beyond_the_body():
    assert set(spec.READ_ONLY_FIELDS) == set(JobSchema().fields) - set(JOB_FIELDS)
    assert {"id", "status", "last_run_id", "source", "paused", "created_at", "deleted_at"} <= spec.READ_ONLY_FIELDS


def test_every_settable_field_has_a_sample():
    sampled = {name for body in SAMPLES for name in body} | set(DEPENDANT_FIELDS)
    assert set(SETTABLE) - sampled == set(), "add a sample value for the new job field(s) to SAMPLES"


def test_every_settable_field_round_trips_through_an_answer_and_a_file(memory):
    memory.worker("cpu1", tags=["gpu"])
    upstream, _, _ = verbs.submit(load_job({"name": "up", "command": "true"}), actor=ADMIN, pipeline=memory.pipeline)
    for body in SAMPLES:
        if body["name"] == "once":
            body = {**body, **{name: [upstream.id] for name in DEPENDANT_FIELDS}}
        spec = load_job(body)
        job, _, _ = verbs.submit(spec, actor=ADMIN, pipeline=memory.pipeline)
        stored = memory.pipeline.jobs.get(job.id)
        answer = json.loads(json.dumps(JobSchema().dump(stored)))  # what GET /jobs/{id} answers
        file = json.loads(json.dumps(exported(answer)))
        assert set(file) == {name for name, value in spec.items() if value is not None} | {"user", "namespace"}
        text = json.dumps(file)
        assert [secret for secret in SECRETS if secret in text] == []
        filled, missing = resolve(file, stored.spec())
        assert missing == {}
        back = verbs.own(load_job(filled), ADMIN, before=stored)
        assert changed_fields(back, verbs.own(spec, ADMIN)) == []
        assert changed_fields(back, load_job(verbs.as_body(stored.spec()))) == []


def test_a_body_fetched_and_sent_back_has_exactly_the_read_only_fields_ignored():
    state = dict.fromkeys(spec.READ_ONLY_FIELDS, "x")
    assert load_job({"name": "a", "command": "true", **state})["command"] == "true"
    with pytest.raises(InvalidJob) as refused:
        load_job({"name": "a", "command": "true", "colour": "red"})
    assert "colour" in refused.value.errors
    with pytest.raises(InvalidJob) as refused:  # a message holds no answer's fields
        load_message({"command": "true", "user": "u", "status": "queued"})
    assert "status" in refused.value.errors


def test_the_redacted_placeholder_is_never_taken_as_a_value():
    with pytest.raises(InvalidJob) as refused:
        load_job({"name": "a", "command": "true", "env": {"TOKEN": REDACTED}})
    assert "TOKEN" in refused.value.errors["env"][0]
    http = {"url": "http://127.0.0.1:9/", "headers": {"X-Key": REDACTED}, "body": REDACTED}
    with pytest.raises(InvalidJob) as refused:
        load_job({"name": "a", "executor": "http", "http": http})
    assert set(refused.value.errors["http"]) == {"headers", "body"}


def test_references_take_supplied_values_then_stored_ones_else_are_refused():
    file = {
        "name": "a",
        "env": {"TOKEN": dict(SECRET), "OTHER": REDACTED, "PLAIN": "v"},
        "http": {"headers": {"K": dict(SECRET)}, "body": dict(SECRET)},
    }
    given = supply(file, {"headers": {"K": "given"}}, shell={"TOKEN": "from-shell"})
    assert given["env"] == {"TOKEN": "from-shell", "OTHER": REDACTED, "PLAIN": "v"}
    assert given["http"] == {"headers": {"K": "given"}, "body": dict(SECRET)}
    filled, missing = resolve(given, {"env": {"OTHER": "kept"}, "http": {"body": {"b": 1}}})
    assert missing == {}
    assert filled["env"]["OTHER"] == "kept" and filled["http"]["body"] == {"b": 1}
    _, missing = resolve(file, None)
    assert set(missing["env"]) == {"TOKEN", "OTHER"} and set(missing["http"]) == {"headers", "body"}


def test_a_redacted_value_anywhere_is_exported_as_a_reference_and_resolved_in_place():
    answer = {"name": "a", "command": "true", "params": [{"name": "P", "description": REDACTED}]}
    file = exported(answer)
    assert file["params"] == [{"name": "P", "description": SECRET}]
    filled, missing = resolve(file, {"params": [{"name": "P", "description": "kept"}]})
    assert (filled["params"], missing) == ([{"name": "P", "description": "kept"}], {})
    _, missing = resolve(file, {"params": []})
    assert missing == {"params": {"0": {"description": [missing["params"]["0"]["description"][0]]}}}
    webhook = {"http": {"url": "u", "body": {"nested": dict(SECRET)}}}  # a webhook's own JSON
    assert resolve(webhook, None) == (webhook, {})


def plain(name="job-a", **body):
    return {"name": name, "command": "echo a", "schedule": "0 3 * * *", **body}


def test_apply_creates_then_leaves_then_updates_by_namespace_and_name(memory):
    created = apply.apply([plain(env={"TOKEN": "t1"})], actor=ADMIN, pipeline=memory.pipeline)
    assert [(r.action, r.namespace) for r in created] == [("created", "default")]
    job_id = created[0].id
    file = exported(memory.pipeline.jobs.get(job_id).spec())
    assert file["env"] == {"TOKEN": SECRET}
    again = apply.apply([file], actor=ADMIN, pipeline=memory.pipeline)
    assert [(r.action, r.id, r.changes) for r in again] == [("unchanged", job_id, [])]
    dry = apply.apply([{**file, "priority": 90}], actor=ADMIN, dry_run=True, pipeline=memory.pipeline)
    assert [(r.action, r.changes) for r in dry] == [("updated", ["priority"])]
    assert memory.pipeline.jobs.get(job_id).priority == 50
    updated = apply.apply([{**file, "priority": 90}], actor=ADMIN, pipeline=memory.pipeline)
    assert [(r.action, r.id, r.changes) for r in updated] == [("updated", job_id, ["priority"])]
    stored = memory.pipeline.jobs.get(job_id)
    assert stored.priority == 90 and stored.env == {"TOKEN": "t1"}  # the reference kept the value


def test_apply_finds_a_job_made_by_post_and_claims_its_name(memory):
    job, _, _ = verbs.submit(load_job(plain("made-by-post")), actor=ADMIN, pipeline=memory.pipeline)
    result = apply.apply([exported(job.spec())], actor=ADMIN, pipeline=memory.pipeline)
    assert [(r.action, r.id) for r in result] == [("unchanged", job.id)]
    verbs.submit(load_job(plain("made-by-post")), actor=ADMIN, pipeline=memory.pipeline)  # a second one
    again = apply.apply([exported(job.spec())], actor=ADMIN, pipeline=memory.pipeline)
    assert [(r.action, r.id) for r in again] == [("unchanged", job.id)]  # the claimed one


def test_two_unclaimed_jobs_of_one_name_are_refused(memory):
    for _ in range(2):
        verbs.submit(load_job(plain("twice")), actor=ADMIN, pipeline=memory.pipeline)
    with pytest.raises(Conflict, match="2 jobs are named 'twice'"):
        apply.apply([plain("twice")], actor=ADMIN, pipeline=memory.pipeline)


def test_a_deleted_job_s_name_makes_a_new_job(memory):
    first = apply.apply([plain("phoenix")], actor=ADMIN, pipeline=memory.pipeline)[0]
    verbs.delete(first.id, actor=ADMIN, pipeline=memory.pipeline)
    second = apply.apply([plain("phoenix")], actor=ADMIN, pipeline=memory.pipeline)[0]
    assert second.action == "created" and second.id != first.id
    assert apply.apply([plain("phoenix")], actor=ADMIN, pipeline=memory.pipeline)[0].id == second.id


def test_one_bad_job_refuses_the_whole_file_naming_it(memory):
    bodies = [plain("good"), {"command": "no name"}, plain("bad", priority=500), plain("good"), plain(namespace="A/B")]
    with pytest.raises(InvalidJob) as refused:
        apply.apply(bodies, actor=ADMIN, pipeline=memory.pipeline)
    errors = refused.value.errors["jobs"]
    assert set(errors) == {"1", "2", "3", "4"} and "namespace" in errors["4"]
    assert "names its jobs" in errors["1"]["name"][0]
    assert "priority" in errors["2"] and "namespace and name too" in errors["3"]["name"][0]
    assert memory.pipeline.jobs.list(namespaces=["default"])[0] == []  # nothing was made


def test_a_reference_for_a_new_job_is_refused(memory):
    with pytest.raises(InvalidJob) as refused:
        apply.apply([plain(env={"TOKEN": dict(SECRET)})], actor=ADMIN, pipeline=memory.pipeline)
    assert "supply it" in refused.value.errors["jobs"]["0"]["env"]["TOKEN"][0]


def test_an_operator_creates_but_does_not_update(memory):
    from hydra.errors import Forbidden

    created = apply.apply([plain("ops")], actor=OPERATOR, pipeline=memory.pipeline)[0]
    assert created.action == "created"
    with pytest.raises(Forbidden):
        apply.apply([plain("ops", priority=1)], actor=OPERATOR, pipeline=memory.pipeline)


def test_a_name_claim_is_won_once(memory):
    names = JobNameStore()
    first, won = names.claim("default", "n/1", 0, "job-1")
    second, won_again = names.claim("default", "n/1", 0, "job-2")
    assert won and not won_again and second.job_id == "job-1" == first.job_id


def test_an_apply_that_loses_the_claim_applies_to_the_winners_job(memory):
    plan_first = apply.apply([plain("raced")], actor=ADMIN, dry_run=True, pipeline=memory.pipeline)
    assert plan_first[0].action == "created"
    # Another apply claimed the name and made its job between this one's plan and its claim:
    winner = apply.apply([plain("raced")], actor=ADMIN, pipeline=memory.pipeline)[0]
    plan = apply._plan(0, plain("raced", priority=7), ADMIN, memory.pipeline, JobNameStore())
    plan.job, plan.changes = None, []  # as planned before the winner claimed
    result = apply._carry_out(plan, plain("raced", priority=7), ADMIN, memory.pipeline, JobNameStore())
    assert (result.action, result.id, result.changes) == ("updated", winner.id, ["priority"])
    assert len([j for j in memory.pipeline.jobs.list(namespaces=["default"])[0] if j.name == "raced"]) == 1
