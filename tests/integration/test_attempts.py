"""Attempts follow each other: retries after backoff end in a dead letter; lost work fails over."""
from __future__ import annotations

from hydra.runs import RunStore
from tests.helpers import submit, wait_run, wait_until


def chain(job_id: str) -> list[dict]:
    return sorted(RunStore().for_job(job_id), key=lambda r: r["attempt"])


def test_failed_attempt_is_retried_after_backoff_then_dead_lettered(api, stack):
    created = submit(api, "echo try >&2; exit 4", retries=1)
    first = wait_run(created["run_id"])
    assert first["status"] == "retrying" and first["outcome"] == "failed" and first["returncode"] == 4

    second = wait_until(lambda: next((r for r in chain(created["job_id"]) if r["attempt"] == 2), None), 10,
                        message="attempt 2 recorded")
    assert second["retry_of"] == created["run_id"]
    assert second["status"] == "pending" and second["not_before"] > first["finished_at"]

    second = wait_run(second["_id"], timeout=30)
    assert second["status"] == "dead_letter" and second["outcome"] == "failed"
    assert second["started_at"] >= second["not_before"]
    assert [r["attempt"] for r in chain(created["job_id"])] == [1, 2]
    assert api.get(f"/jobs/{created['job_id']}").json["status"] == "dead_letter"
