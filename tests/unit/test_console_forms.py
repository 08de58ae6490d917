"""The console's submit form: fields to a job body, the API's field errors back to fields
(pure), and the series the charts read (on fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest
from marshmallow import ValidationError

from api.console.forms import FORM, body_of, field_errors
from hydra.broker import series
from hydra.model.spec import JobSpecSchema


def test_a_filled_form_is_the_body_post_jobs_accepts():
    body, problems = body_of(
        {
            "name": "nightly",
            "command": "make test",
            "shell": "bash",
            "os": "linux",
            "tags": "gpu, ssd",
            "allowed_users": "ana\nbob",
            "timeout": "600",
            "retries": "2",
            "priority": "80",
            "env": "STAGE=ci\nEMPTY=\n",
            "schedule": "",
        }
    )
    assert problems == {}
    assert body == {
        "name": "nightly",
        "command": "make test",
        "shell": "bash",
        "affinity": {"os": ["linux"], "tags": ["gpu", "ssd"], "allowed_users": ["ana", "bob"]},
        "timeout": 600.0,
        "retries": 2,
        "priority": 80,
        "env": {"STAGE": "ci", "EMPTY": ""},
    }
    JobSpecSchema().load(body)  # valid as it stands


def test_args_are_one_per_line_and_env_lines_must_be_key_value():
    body, problems = body_of({"name": "a", "args": "python3\n-c\nprint( 1 )\n", "env": "OK=1\nnot a pair"})
    assert body["args"] == ["python3", "-c", "print( 1 )"]
    assert problems == {"env": ["line 2: write KEY=VALUE"]}


def test_the_schemas_errors_land_beside_their_fields():
    body, _ = body_of({"name": "", "command": "x", "timeout": "soon", "retries": "-1", "tags": "GPU!", "priority": "7"})
    with pytest.raises(ValidationError) as caught:
        JobSpecSchema().load(body)
    errors = field_errors(caught.value.messages)
    assert "name" in errors  # required (left empty)
    assert errors["timeout"] == ["Not a valid number."]
    assert errors["retries"] and "greater than or equal to 0" in errors["retries"][0]
    assert errors["tags"] and FORM not in errors  # affinity.tags -> the tags field


def test_errors_of_fields_the_form_lacks_go_to_the_form():
    errors = field_errors(
        {"_schema": ["give command or args"], "http": {"url": ["bad"]}, "env": {"1X": {"key": ["bad key"]}}}
    )
    assert errors[FORM] == ["give command or args", "http: url: bad"]
    assert errors["env"] == ["1X: key: bad key"]


def test_series_count_ended_runs_per_minute_by_namespace_and_in_all():
    redis = fakeredis.FakeRedis(decode_responses=True)
    now = 1_800_000_000.0
    series.count("team-a", "succeeded", 0.3, 0.5, now - 120, redis=redis)
    series.count("team-a", "failed", 2.0, 5.0, now - 60, redis=redis)
    series.count("team-b", "succeeded", None, None, now, redis=redis)
    everything = series.read(None, minutes=5, now=now, redis=redis)
    assert everything.step == 60 and len(everything.starts) == 5
    assert everything.by_status == {"succeeded": [0, 0, 1, 0, 1], "failed": [0, 0, 0, 1, 0]}
    assert everything.durations == {"0.5": 1, "5.0": 1}
    team_a = series.read(["team-a"], minutes=5, now=now, redis=redis)
    assert team_a.by_status == {"succeeded": [0, 0, 1, 0, 0], "failed": [0, 0, 0, 1, 0]}
    assert series.read([], minutes=5, now=now, redis=redis).by_status == {}
    assert 0 < redis.ttl(series.key("team-a", series.minute_of(now - 60))) <= series.KEEP


def test_a_long_window_is_summed_into_at_most_max_points_buckets():
    redis = fakeredis.FakeRedis(decode_responses=True)
    now = 1_800_000_000.0
    for minutes_ago in range(0, 1440, 7):
        series.count("ns", "succeeded", 1.0, 1.0, now - minutes_ago * 60, redis=redis)
    day = series.read(None, minutes=10**6, now=now, redis=redis)  # asked for more than a day: a day
    assert len(day.starts) <= series.MAX_POINTS and day.step == 12 * 60
    assert sum(day.by_status["succeeded"]) == len(range(0, 1440, 7))


def test_the_form_names_the_jobs_a_job_starts_and_their_errors_land_on_their_fields():
    body, problems = body_of({"name": "build", "command": "make", "on_success": "a1, b2\nc3", "on_failure": ""})
    assert problems == {} and body["on_success"] == ["a1", "b2", "c3"] and "on_failure" not in body
    assert JobSpecSchema().load(body)["on_success"] == ["a1", "b2", "c3"]
    with pytest.raises(ValidationError) as info:
        JobSpecSchema().load({**body, "on_completion": ["not an id!"]})
    assert field_errors(info.value.normalized_messages()) == {
        "on_completion": ["0: a job id: letters, digits and . _ : - (at most 64)"]
    }


def test_the_form_takes_a_notification_target_per_line_and_its_errors_land_on_notify():
    form = {
        "name": "nightly",
        "command": "make",
        "notify": "failed,recovered webhook https://ops.example/hook a-webhook-secret-0123\n\ndead_letter slack https://hooks.example/T/B/X",
    }
    body, problems = body_of(form)
    assert problems == {}
    assert JobSpecSchema().load(body)["notify"] == [
        {
            "on": ["recovered", "failed"],
            "webhook": {"url": "https://ops.example/hook", "secret": "a-webhook-secret-0123"},
        },
        {"on": ["dead_letter"], "slack": {"url": "https://hooks.example/T/B/X"}},
    ]
    _, problems = body_of({**form, "notify": "failed email ops@example.com"})
    assert problems["notify"][0].startswith("line 1: write EVENTS webhook URL SECRET")
    with pytest.raises(ValidationError) as info:
        JobSpecSchema().load(body_of({**form, "notify": "exploded slack https://hooks.example/x"})[0])
    assert list(field_errors(info.value.normalized_messages())) == ["notify"]
