"""Job body validation: every bad field is named, good bodies are normalized."""

import pytest

from hydra.errors import InvalidJob
from hydra.model.bodies import body_problems
from hydra.model.message import load_message, message_kwargs
from hydra.model.spec import load_job

SEED = {
    "name": "test-echo",
    "user": "rich",
    "affinity": {"os": ["linux"], "tags": [], "allowed_users": ["rich"]},
    "command": "echo 'hello world'",
    "shell": "bash",
    "retries": 0,
    "timeout": 10,
}


def errors_of(body, loader=load_job):
    with pytest.raises(InvalidJob) as info:
        loader(body)
    return info.value.errors


def test_the_example_body_is_valid_and_gets_defaults():
    job = load_job(SEED)
    assert job["priority"] == 50 and job["env"] == {} and job["schedule"] is None
    assert job["affinity"] == {"os": ["linux"], "tags": [], "allowed_users": ["rich"]}


def test_os_aliases_normalize_and_lists_dedupe():
    job = load_job(dict(SEED, affinity={"os": ["Darwin", "macos"], "tags": ["gpu", "gpu"]}))
    assert job["affinity"]["os"] == ["macos"] and job["affinity"]["tags"] == ["gpu"]


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"name": ""}, "name"),
        ({"user": "has space"}, "user"),
        ({"shell": "zsh"}, "shell"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "ten"}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"priority": 101}, "priority"),
        ({"affinity": {"os": ["plan9"]}}, "affinity"),
        ({"affinity": {"tags": ["GPU!"]}}, "affinity"),
        ({"affinity": {"colour": "blue"}}, "affinity"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"schedule": "every minute"}, "schedule"),
        ({"schedule": "* * * * * *"}, "schedule"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"scheduled_at": "2030-01-01T00:00:00"}, "scheduled_at"),  # no zone
        ({"unknown": 1}, "unknown"),
        ({"command": None}, "command"),
    ],
)
def test_bad_fields_are_named(patch, field):
    assert field in errors_of(dict(SEED, **patch))


def test_missing_required_fields_are_named():
    errors = errors_of({"command": "true"})
    assert set(errors) >= {"name"}  # user: the caller, unless named
    assert "user" in errors_of({"command": "true"}, load_message)  # a message always names its user


def test_combinations():
    assert "command" in errors_of(dict(SEED, command=None, args=None))
    assert "shell" in errors_of(dict(SEED, args=["ls", "-l"]))
    assert "user" in errors_of(dict(SEED, user="mallory"))  # not in affinity.allowed_users
    assert "scheduled_at" in errors_of(dict(SEED, schedule="* * * * *", scheduled_at="2030-01-01T00:00:00+00:00"))


def test_non_object_body():
    assert "_schema" in errors_of(["not", "an", "object"])


def test_scheduled_at_is_stored_in_utc():
    job = load_job(dict(SEED, scheduled_at="2030-01-01T09:00:00+09:00"))
    assert job["scheduled_at"].isoformat() == "2030-01-01T00:00:00+00:00"


def test_message_defaults_name_and_attempt_and_rejects_schedules():
    message = load_message({"command": "echo hi", "user": "ana"})
    assert message["name"] == "echo hi" and message["attempt"] == 1
    assert "schedule" in errors_of({"command": "x", "user": "ana", "schedule": "* * * * *"}, load_message)


def test_message_kwargs_carry_the_job_and_attempt_only():
    job = dict(load_job(SEED), created_at="x", status="queued")
    kwargs = message_kwargs(job, job_id="job-1", attempt=3)
    assert kwargs["job_id"] == "job-1" and kwargs["attempt"] == 3
    assert "created_at" not in kwargs and "status" not in kwargs and "schedule" not in kwargs
    assert load_message(kwargs)["command"] == SEED["command"]


def test_empty_scheduled_at_means_now():
    assert load_job(dict(SEED, scheduled_at=""))["scheduled_at"] is None


def test_retry_policy_fields_are_validated_and_reach_the_message():
    job = load_job(dict(SEED, retries=2, backoff={"base": 0.2, "factor": 3, "cap": 5, "jitter": 0}, max_lost=2))
    kwargs = message_kwargs(job, job_id="job-1", attempt=1)
    assert kwargs["backoff"] == {"base": 0.2, "factor": 3.0, "cap": 5.0, "jitter": 0.0}
    assert kwargs["max_lost"] == 2
    assert load_message(kwargs)["backoff"] == kwargs["backoff"]
    for bad in ({"base": 0}, {"factor": 0.5}, {"jitter": 2}, {"cap": -1}, {"delay": 1}):
        assert "backoff" in errors_of(dict(SEED, backoff=bad))
    assert "max_lost" in errors_of(dict(SEED, max_lost=0))


HTTP = {"url": "http://127.0.0.1:9999/hook", "method": "post", "headers": {"X-A": "1"}, "body": {"k": "v"}}


def test_http_jobs_need_a_valid_request_and_no_command():
    job = load_job(dict(SEED, command=None, shell=None, executor="http", http=HTTP))
    assert job["http"]["method"] == "POST" and job["http"]["body"] == {"k": "v"}
    assert "http" in message_kwargs(job, job_id="j", attempt=1)
    base = dict(SEED, command=None, shell=None, executor="http")
    assert "http" in errors_of(base)
    assert "http" in errors_of(dict(base, http=dict(HTTP, url="ftp://x/y")))
    assert "http" in errors_of(dict(base, http=dict(HTTP, method="TRACE")))
    assert "http" in errors_of(dict(base, http=dict(HTTP, timeout=0)))
    assert "command" in errors_of(dict(base, http=HTTP, command="echo"))
    assert "http" in errors_of(dict(SEED, http=HTTP))  # a request without executor http
    assert "executor" in errors_of(dict(SEED, executor="ssh"))


def test_cron_policies_are_validated_and_stay_off_the_message():
    job = load_job(dict(SEED, schedule="*/5 * * * *", misfire="skip", overlap="queue"))
    kwargs = message_kwargs(job, job_id="j", attempt=1)
    assert not {"misfire", "overlap", "schedule", "timezone"} & set(kwargs)
    assert "misfire" in errors_of(dict(SEED, misfire="always"))
    assert "overlap" in errors_of(dict(SEED, overlap="replace"))


# -- what no job body may hold: each of these was a 500, or broke reads later ------------


def _errors(body) -> dict:
    with pytest.raises(InvalidJob) as info:
        load_job(body)
    return info.value.errors


def _body(**fields):
    return {"name": "n", "user": "u", "command": "echo", **fields}


def test_a_cron_that_never_fires_is_refused():
    assert "never fires" in _errors(_body(schedule="0 0 31 2 *"))["schedule"][0]
    assert "never fires" in _errors(_body(schedule="0 0 30 2 *", timezone="Europe/Paris"))["schedule"][0]
    assert load_job(_body(schedule="0 0 29 2 *"))["schedule"] == "0 0 29 2 *"


def test_nesting_deeper_than_the_limit_is_refused_without_recursion():
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert "deeper than 32" in _errors(_body(env={"A": "x"}, args=deep))["args"][0]
    ok: list = []
    for _ in range(29):  # 30 lists, in http (level 2) of the body (level 1): 32 levels
        ok = [ok]
    assert "http" not in body_problems({"http": {"url": "http://x/", "body": ok}})
    assert "http" in body_problems({"http": {"url": "http://x/", "body": [ok]}})


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"command": "echo \ud800"}, "command"),
        ({"env": {"A": "x\udfff"}}, "env"),
        ({"command": "a\x00b"}, "command"),
        ({"env": {"A\x00": "x"}}, "env"),
        ({"name": "\ud83d"}, "name"),
    ],
)
def test_lone_surrogates_and_nul_are_refused(fields, field):
    assert field in _errors(_body(**fields))


@pytest.mark.parametrize("key", ["$where", "a.b", "x\x00"])
def test_keys_with_dollar_dot_or_nul_are_refused_in_headers(key):
    body = {"name": "n", "user": "u", "executor": "http", "http": {"url": "http://x/", "headers": {key: "1"}}}
    assert "http" in _errors(body)


def test_a_webhook_body_may_hold_any_json():
    body = {"name": "n", "user": "u", "executor": "http", "http": {"url": "http://x/", "body": {"$a.b": [[1]]}}}
    assert load_job(body)["http"]["body"] == {"$a.b": [[1]]}
    assert "http" in _errors({**body, "http": {"url": "http://x/", "body": [float("inf")]}})
    assert "http" in _errors({**body, "http": {"url": "http://x/", "body": 2**64}})


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
)
def test_out_of_range_datetimes_are_refused(value):
    assert "scheduled_at" in _errors(_body(scheduled_at=value))


def test_the_same_rules_hold_for_task_messages():
    """What the worker re-validates a message with: a forged message with a lone surrogate fails it."""
    with pytest.raises(InvalidJob) as info:
        load_message({"user": "u", "command": "echo \ud800"})
    assert "command" in info.value.errors
    with pytest.raises(InvalidJob) as info:
        load_message({"user": "evil user!", "command": "x", "timeout": -5, "priority": 999, "attempt": 0, "extra": 1})
    assert {"user", "timeout", "priority", "attempt", "extra"} <= set(info.value.errors)
    with pytest.raises(InvalidJob) as info:
        load_message({"user": "u", "command": "x", "timeout": 1e12})
    assert "timeout" in info.value.errors
