"""Retry, failover and dead-letter decisions, and the backoff curve."""

import random

import pytest

from hydra.model.lifecycle import Backoff, RetryPolicy, decide
from hydra.model.status import RunStatus as S


def policy(retries=0, backoff=None, max_lost=None) -> RetryPolicy:
    return RetryPolicy.of(retries, backoff, max_lost)


def test_final_outcomes_stay_final():
    assert decide(policy(retries=5), S.SUCCEEDED).status == S.SUCCEEDED
    assert decide(policy(retries=5), S.CANCELLED).next_in is None


def test_no_retries_means_failed_not_dead_letter():
    assert decide(policy(retries=0), S.FAILED) == decide(policy(), S.FAILED)
    assert decide(policy(), S.TIMED_OUT).status == S.TIMED_OUT


def test_retries_then_dead_letter():
    job = policy(retries=2, backoff={"jitter": 0})
    first, second, third = (decide(job, S.FAILED, failed_before=n) for n in (0, 1, 2))
    assert (first.status, first.next_in) == (S.RETRYING, 5.0)
    assert (second.status, second.next_in) == (S.RETRYING, 10.0)
    assert third.status == S.DEAD_LETTER and third.next_in is None and "2 retries" in third.reason


def test_lost_attempts_fail_over_at_once_and_do_not_use_retries():
    job = policy(retries=1, backoff={"jitter": 0})
    lost = decide(job, S.LOST)
    assert (lost.next_in, lost.lost, lost.failed) == (0.0, 1, 0)
    # the attempt after a lost one is only the first failure: it may still retry
    assert decide(job, S.FAILED, lost_before=1).status == S.RETRYING


def test_an_attempt_lost_before_it_started_counts_against_nothing():
    never_ran = decide(policy(max_lost=1), S.LOST, started=False)
    assert never_ran.status == S.LOST and never_ran.next_in == 0.0 and never_ran.lost == 0


def test_poison_job_is_dead_lettered_after_max_lost():
    assert decide(policy(), S.LOST, lost_before=1).status == S.LOST
    assert decide(policy(), S.LOST, lost_before=2).status == S.DEAD_LETTER
    assert decide(policy(max_lost=1), S.LOST).status == S.DEAD_LETTER


def test_backoff_grows_caps_and_jitters_within_bounds():
    plain = Backoff(base=1, factor=3, cap=20, jitter=0)
    assert [plain.delay(n) for n in (1, 2, 3, 4)] == [1, 3, 9, 20]
    rng = random.Random(7)
    jittery = Backoff(base=10, factor=2, cap=100, jitter=0.2)
    delays = [jittery.delay(2, rng) for _ in range(200)]
    assert all(16 <= d <= 24 for d in delays) and len(set(delays)) > 100


def test_backoff_of_job_uses_defaults_for_missing_fields():
    assert Backoff.of({"base": 2}) == Backoff(base=2.0)
    assert Backoff.of(None) == Backoff()
    assert RetryPolicy.of(None, None, None) == RetryPolicy(0, Backoff(), 3)


def test_unknown_outcome_is_an_error():
    with pytest.raises(ValueError):
        decide(policy(), S.QUEUED)
