"""What happens after an attempt ends: done, retried later, failed over now, or dead-lettered.

Pure decisions (no I/O), made by whoever recorded the attempt's end:

* ``succeeded`` and ``cancelled`` are final;
* ``failed`` / ``timed_out``: with attempts left (``attempt <= retries``) the attempt is
  recorded as ``retrying`` and the next one starts after an exponential backoff
  (``base * factor ** (attempt - 1)``, capped, with jitter); when the job allowed retries
  and used them all, the last attempt is ``dead_letter``; a job with ``retries: 0`` just
  ``failed`` / ``timed_out``;
* ``lost`` (its worker died or went silent): the next attempt starts at once on another
  eligible worker - losing a machine is not the job's fault, so it does not use up
  ``retries``; after ``max_lost`` lost attempts (default 3: a command that kills its own
  worker) the attempt is ``dead_letter``.

The attempt's raw outcome is kept in the run's ``outcome`` field, so a dead letter still
says whether it failed, timed out or was lost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hydra.model.status import RunStatus

DEFAULT_MAX_LOST = 3


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): min(cap, base * factor**(n-1)), then +/- jitter."""

    base: float = 5.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.1  # fraction of the delay, spread evenly both ways

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, retry - 1))
        if not self.jitter:
            return raw
        spread = raw * self.jitter
        return max(0.0, raw + (rng or random).uniform(-spread, spread))

    @classmethod
    def of(cls, given: dict | None) -> Backoff:
        """A job's ``backoff`` field, with defaults for what it leaves out."""
        return cls(**{k: float(v) for k, v in (given or {}).items() if k in ("base", "factor", "cap", "jitter")})


@dataclass(frozen=True)
class RetryPolicy:
    """What a job allows after an attempt fails or is lost."""

    retries: int = 0
    backoff: Backoff = Backoff()
    max_lost: int = DEFAULT_MAX_LOST

    @classmethod
    def of(cls, retries: int | None, backoff: dict | None, max_lost: int | None) -> RetryPolicy:
        return cls(int(retries or 0), Backoff.of(backoff), int(max_lost or DEFAULT_MAX_LOST))


@dataclass(frozen=True)
class Decision:
    """``status`` is what the ended attempt is recorded as; ``next_in`` is None when no
    further attempt follows, else the seconds until it starts (0 = now). ``lost`` and
    ``failed`` are the chain's counters to carry into that next attempt."""

    status: RunStatus
    next_in: float | None = None
    reason: str | None = None
    lost: int = 0
    failed: int = 0


def decide(
    policy: RetryPolicy,
    outcome: RunStatus,
    *,
    lost_before: int = 0,
    failed_before: int = 0,
    started: bool = True,
    rng: random.Random | None = None,
) -> Decision:
    """Decide the fate of an attempt of a job with ``policy`` that ended with ``outcome``.

    ``lost_before`` / ``failed_before`` count the chain's earlier attempts that were lost
    while running / failed or timed out. ``started`` is False for an attempt lost before it
    ever ran (queued on a worker that died): it is failed over but counts against nothing.
    """
    if outcome in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        return Decision(outcome, lost=lost_before, failed=failed_before)
    if outcome == RunStatus.LOST:
        lost = lost_before + (1 if started else 0)
        max_lost = policy.max_lost
        if lost >= max_lost:
            return Decision(
                RunStatus.DEAD_LETTER,
                reason=f"lost {lost} times (max_lost {max_lost})",
                lost=lost,
                failed=failed_before,
            )
        return Decision(
            RunStatus.LOST, next_in=0.0, reason="failing over to another worker", lost=lost, failed=failed_before
        )
    if outcome not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        raise ValueError(f"{outcome} is not an attempt outcome")
    retries = policy.retries
    failed = failed_before + 1
    if failed <= retries:
        return Decision(
            RunStatus.RETRYING,
            next_in=policy.backoff.delay(failed, rng),
            reason=f"retry {failed} of {retries}",
            lost=lost_before,
            failed=failed,
        )
    if retries:
        return Decision(
            RunStatus.DEAD_LETTER, reason=f"{outcome.value} after {retries} retries", lost=lost_before, failed=failed
        )
    return Decision(outcome, lost=lost_before, failed=failed)
