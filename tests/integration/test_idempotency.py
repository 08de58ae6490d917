"""Idempotency-Key on POST /jobs/, against the API under gunicorn (two processes, several
threads each) on the real stack: racing clients with one key make exactly one job."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests

from hydra.store.jobs import JobStore
from tests.helpers import job_body, wait_run


@pytest.fixture(scope="module")
def url(stack):
    stack.start_api()
    return stack.api_url


def post(url, headers, body, key):
    return requests.post(f"{url}/jobs/", json=body, headers={**headers, "Idempotency-Key": key}, timeout=30)


def test_a_repeated_request_answers_with_the_first_job(url, auth_headers):
    key, body = str(uuid.uuid4()), job_body("echo once")
    first = post(url, auth_headers, body, key)
    assert first.status_code == 201, first.json()
    assert "Idempotent-Replayed" not in first.headers
    again = post(url, auth_headers, dict(reversed(body.items())), key)  # the same body, keys reordered
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["job_id"], again.json()["run_id"]) == (first.json()["job_id"], first.json()["run_id"])
    assert wait_run(first.json()["run_id"]).stdout == "once\n"
    assert JobStore()._collection.count_documents({"name": body["name"]}) == 1


def test_the_same_key_with_another_body_is_a_409_naming_the_key(url, auth_headers):
    key = str(uuid.uuid4())
    assert post(url, auth_headers, job_body("true"), key).status_code == 201
    other = post(url, auth_headers, job_body("false"), key)
    assert other.status_code == 409 and key in other.json()["message"]


def test_a_bad_key_is_a_422_naming_the_header(url, auth_headers):
    bad = post(url, auth_headers, job_body("true"), "x" * 300)
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["errors"]["headers"]


def test_racing_clients_with_one_key_make_exactly_one_job(url, auth_headers):
    key, body = str(uuid.uuid4()), job_body("true")
    answers: list[requests.Response] = []
    barrier = threading.Barrier(12)

    def send() -> None:
        with requests.Session() as session:  # a connection each: the requests race in the API
            barrier.wait()
            answers.append(
                session.post(f"{url}/jobs/", json=body, headers={**auth_headers, "Idempotency-Key": key}, timeout=30)
            )

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [a for a in answers if a.status_code == 201]
    # Any other answer is the documented 409 "still being served: send it again".
    assert all(a.status_code == 409 and "send it again" in a.json()["message"] for a in answers if a not in made)
    assert len({(a.json()["job_id"], a.json()["run_id"]) for a in made}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in made) == 1
    assert JobStore()._collection.count_documents({"name": body["name"]}) == 1
