"""Attempts follow each other: retries after backoff end in a dead letter, which is listed
and can be retried by hand; lost work fails over."""

from __future__ import annotations

from hydra.model.records import Run
from hydra.store.runs import RunStore
from tests.helpers import submit, unique, wait_run, wait_until

FAST = {"base": 0.5, "factor": 2, "cap": 5, "jitter": 0}


def chain(job_id: str) -> list[Run]:
    return sorted(RunStore().for_job(job_id), key=lambda r: r.attempt)


def test_failed_attempt_is_retried_after_backoff_then_dead_lettered(api, stack):
    created = submit(api, "echo try >&2; exit 4", retries=2, backoff=FAST)
    first = wait_run(created["run_id"])
    assert first.status == "retrying" and first.outcome == "failed" and first.returncode == 4

    second = wait_until(
        lambda: next((r for r in chain(created["job_id"]) if r.attempt == 2), None), 10, message="attempt 2 recorded"
    )
    assert second.retry_of == created["run_id"]
    assert second.status == "pending" and second.not_before > first.finished_at

    third = wait_until(
        lambda: next((r for r in chain(created["job_id"]) if r.attempt == 3), None), 20, message="attempt 3 recorded"
    )
    third = wait_run(third.id, timeout=30)
    assert third.status == "dead_letter" and third.outcome == "failed"
    runs = chain(created["job_id"])
    assert [(r.attempt, r.status) for r in runs] == [(1, "retrying"), (2, "retrying"), (3, "dead_letter")]
    # every attempt waited for its backoff: 0.5 s, then 1 s (factor 2)
    for before, after, delay in ((runs[0], runs[1], 0.5), (runs[1], runs[2], 1.0)):
        assert after.started_at >= after.not_before
        assert (after.not_before - before.finished_at).total_seconds() >= delay - 0.01
    assert api.get(f"/jobs/{created['job_id']}").json["status"] == "dead_letter"


def test_dead_letters_are_listed_and_retried_by_hand(api, stack, shared):
    flag = shared / "fixed"
    # fails until the flag exists: the operator "fixes" it, then retries the dead letter
    created = submit(api, f"test -e {flag} && echo fixed", retries=1, backoff=FAST, user=unique("dlq"))
    wait_until(
        lambda: next((r for r in chain(created["job_id"]) if r.status == "dead_letter"), None),
        30,
        message="the job's dead letter",
    )
    dead = chain(created["job_id"])[-1]

    listed = api.get("/dead-letter", query_string={"job_id": created["job_id"]}).json
    assert [r["id"] for r in listed] == [dead.id] and listed[0]["outcome"] == "failed"
    assert dead.id in {r["id"] for r in api.get("/dead-letter", query_string={"limit": 1000}).json}

    flag.touch()
    response = api.post(f"/runs/{dead.id}/retry")
    assert response.status_code == 201, response.json
    again = wait_run(response.json["run_id"])
    assert again.status == "succeeded" and again.stdout == "fixed\n"
    assert again.attempt == dead.attempt + 1 and again.retry_of == dead.id
    assert RunStore().get(dead.id).retried_by == again.id

    assert api.get("/dead-letter", query_string={"job_id": created["job_id"]}).json == []
    with_retried = api.get("/dead-letter", query_string={"job_id": created["job_id"], "include_retried": "true"})
    assert [r["id"] for r in with_retried.json] == [dead.id]
    second = api.post(f"/runs/{dead.id}/retry")
    assert second.status_code == 409 and again.id in second.json["message"]
    assert api.post(f"/runs/{again.id}/retry").status_code == 409  # it succeeded
    assert api.post("/runs/nope/retry").status_code == 404
