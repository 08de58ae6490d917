"""A job's settings in words (hydra.model.wording): what the console and the CLI say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hydra.model import wording


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (
            {"os": ["linux"], "tags": ["gpu"], "allowed_users": ["rich", "ana"]},
            "linux workers tagged gpu, users rich or ana",
        ),
        ({}, "any worker"),
        (None, "any worker"),
        ({"os": [], "tags": [], "allowed_users": []}, "any worker"),
        ({"tags": ["gpu", "cuda", "big"]}, "any worker tagged gpu, cuda and big"),
        ({"os": ["linux", "macos"], "allowed_users": ["ana"]}, "linux or macos workers, user ana"),
    ],
)
def test_affinity(given, said):
    assert wording.affinity(given) == said


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((3, {"base": 2, "cap": 60}), "3 retries, exponential backoff from 2 s, at most 1 min"),
        ((0, None), "no retries"),
        ((1, None), "1 retry, exponential backoff from 5 s, at most 5 min"),  # the defaults
        ((2, {"factor": 1, "base": 10}), "2 retries, 10 s apart"),
        ((2, {"base": 600, "cap": 60}), "2 retries, 1 min apart"),  # the cap wins from the first
        (
            (5, {"factor": 3, "jitter": 0}),
            "5 retries, exponential backoff from 5 s, each wait 3 times the last, at most 5 min, no jitter",
        ),
        ((1, {"jitter": 0.5}), "1 retry, exponential backoff from 5 s, at most 5 min, 50% jitter"),
        ((0, None, 5), "no retries; started elsewhere up to 5 times when its worker is lost"),
        ((0, None, 3), "no retries"),  # the default max_lost is not worth saying
    ],
)
def test_retries(args, said):
    assert wording.retries(*args) == said


@pytest.mark.parametrize(
    ("expr", "zone", "said"),
    [
        ("0 2 * * *", "UTC", "every day at 02:00 UTC (cron 0 2 * * *)"),
        ("0 9 * * 1-5", "Europe/Paris", "at 09:00 Europe/Paris, Monday through Friday (cron 0 9 * * 1-5)"),
        ("30 3 1 * *", None, "at 03:30 UTC, on day 1 of the month (cron 30 3 1 * *)"),
        ("*/5 * * * *", "UTC", "every 5 minutes (UTC; cron */5 * * * *)"),
        ("15,45 * * * *", "Asia/Tokyo", "at 15 and 45 minutes past the hour (Asia/Tokyo; cron 15,45 * * * *)"),
        ("0 0,12 * * *", "UTC", "every day at 00:00 and 12:00 UTC (cron 0 0,12 * * *)"),
        (None, "UTC", "no schedule"),
    ],
)
def test_schedule(expr, zone, said):
    assert wording.schedule(expr, zone) == said


def test_a_schedule_it_cannot_describe_still_shows_the_expression():
    said = wording.schedule("nonsense", "UTC")
    assert said.startswith("cron nonsense (UTC; ")


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (None, "-"),
        (0, "0 s"),
        (0.25, "0.25 s"),
        (1.5, "1.5 s"),
        (2.0, "2 s"),
        (12.4, "12 s"),
        (59.6, "1 min"),
        (90, "1 min 30 s"),
        (3600, "1 h"),
        (3720, "1 h 2 min"),
        (90061, "1 d 1 h"),
    ],
)
def test_duration(seconds, said):
    assert wording.duration(seconds) == said


def test_one_time_format_in_utc():
    paris = timezone(timedelta(hours=1))
    assert wording.timestamp(datetime(2026, 12, 24, 18, 0, 5, 999, tzinfo=paris)) == "2026-12-24 17:00:05Z"
    assert wording.timestamp(datetime(2026, 12, 24, 17, 0)) == "2026-12-24 17:00:00Z"  # naive: stored UTC
    assert wording.timestamp(None) == "-"
    assert wording.once(datetime(2026, 12, 24, 17, 0, tzinfo=UTC)) == "once, at 2026-12-24 17:00:00Z"
    assert wording.once(None) == "runs when submitted"
