"""Cron next/last fire in a time zone, across daylight-saving changes; tick run ids."""

from datetime import UTC, datetime

from hydra.model.cron import last_fire, next_fire, tick_run_id

UTC = UTC


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_next_fire_is_strictly_after_and_in_utc():
    assert next_fire("*/5 * * * *", "UTC", utc(2024, 1, 1, 12, 0)) == utc(2024, 1, 1, 12, 5)
    assert next_fire("*/5 * * * *", "UTC", utc(2024, 1, 1, 12, 3, 59)) == utc(2024, 1, 1, 12, 5)
    # 06:00 in Tokyo is 21:00 UTC the day before
    assert next_fire("0 6 * * *", "Asia/Tokyo", utc(2024, 1, 1, 12, 0)) == utc(2024, 1, 1, 21, 0)


def test_last_fire_includes_the_instant_itself():
    assert last_fire("* * * * *", "UTC", utc(2024, 1, 1, 12, 0)) == utc(2024, 1, 1, 12, 0)
    assert last_fire("* * * * *", "UTC", utc(2024, 1, 1, 12, 0, 30)) == utc(2024, 1, 1, 12, 0)
    assert last_fire("0 0 * * *", "UTC", utc(2024, 1, 3, 5, 0)) == utc(2024, 1, 3, 0, 0)


def test_spring_forward_runs_a_missing_time_once_after_the_gap():
    # New York, 2024-03-10: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
    day_before = next_fire("30 2 * * *", "America/New_York", utc(2024, 3, 8, 12, 0))
    gap_day = next_fire("30 2 * * *", "America/New_York", day_before)
    day_after = next_fire("30 2 * * *", "America/New_York", gap_day)
    assert day_before == utc(2024, 3, 9, 7, 30)  # 02:30 EST
    assert gap_day == utc(2024, 3, 10, 7, 0)  # 03:00 EDT, the first moment after the gap
    assert day_after == utc(2024, 3, 11, 6, 30)  # 02:30 EDT


def test_fall_back_runs_a_fixed_time_once():
    # New York, 2024-11-03: 01:00-02:00 happens twice (EDT, then EST).
    first = next_fire("30 1 * * *", "America/New_York", utc(2024, 11, 2, 12, 0))
    second = next_fire("30 1 * * *", "America/New_York", first)
    assert first == utc(2024, 11, 3, 5, 30)  # 01:30 EDT
    assert second == utc(2024, 11, 4, 6, 30)  # the next day, not 01:30 EST an hour later
    assert last_fire("30 1 * * *", "America/New_York", utc(2024, 11, 3, 7, 0)) == first


def test_fall_back_keeps_every_real_hour_of_an_hourly_job():
    ticks, at = [], utc(2024, 11, 3, 4, 30)
    for _ in range(4):
        at = next_fire("0 * * * *", "America/New_York", at)
        ticks.append(at)
    assert ticks == [utc(2024, 11, 3, 5, 0), utc(2024, 11, 3, 6, 0), utc(2024, 11, 3, 7, 0), utc(2024, 11, 3, 8, 0)]


def test_tick_run_id_is_deterministic_per_job_and_instant():
    tick = utc(2024, 1, 1, 12, 0)
    same = datetime(2024, 1, 1, 21, 0, tzinfo=__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert tick_run_id("job-1", tick) == tick_run_id("job-1", same)
    assert tick_run_id("job-1", tick) != tick_run_id("job-2", tick)
    assert tick_run_id("job-1", tick) != tick_run_id("job-1", utc(2024, 1, 1, 12, 1))
