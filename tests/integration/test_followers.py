"""Many followers of one run on the real stack: the API under gunicorn as the stack runs it
(gevent worker class), real Redis, MongoDB server and worker. Each follower reads
``GET /runs/<id>/output/events`` (server-sent events) - raw, through the Python client, and
through the console - and every one gets every line once, in order, then the final status.
Content and completeness only: never how fast."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from hydra.client import Client
from tests.helpers import job_body, wait_until

FOLLOWERS = 40
LINES = 60


def events(response: requests.Response) -> list[dict]:
    """Each ``page`` event's JSON, in order, until the server ends the stream."""
    pages, event, data = [], None, []
    for line in response.iter_lines(decode_unicode=True):
        if not line:
            if event == "page":
                pages.append(json.loads("\n".join(data)))
            event, data = None, []
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
    return pages


@pytest.fixture(scope="module")
def gunicorn_api(stack):
    stack.start_api()
    return stack.api_url


def start_printer(url: str, headers: dict, lines: int = LINES, pause: float = 0.1) -> str:
    command = f'for i in $(seq 1 {lines}); do echo "line $i"; sleep {pause}; done; echo "bye" >&2; exit 3'
    created = requests.post(f"{url}/jobs/", json=job_body(command, timeout=300), headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["run_id"]


def expected_stdout(lines: int = LINES) -> str:
    return "".join(f"line {i}\n" for i in range(1, lines + 1))


def test_many_followers_of_one_run_each_get_every_line_once_and_the_final_status(gunicorn_api, auth_headers):
    run_id = start_printer(gunicorn_api, auth_headers)
    results: dict[int, list[dict]] = {}
    failures: list[BaseException] = []

    def follower(index: int) -> None:
        try:
            # half of them join at once, the others once the output is under way (mid-run)
            if index % 2:
                wait_until(
                    lambda: requests.get(
                        f"{gunicorn_api}/runs/{run_id}/output", headers=auth_headers, timeout=30
                    ).json()["chunks"],
                    120,
                    message="output under way",
                )
            with requests.get(
                f"{gunicorn_api}/runs/{run_id}/output/events",
                headers={**auth_headers, "Accept": "text/event-stream"},
                stream=True,
                timeout=(30, 120),
            ) as response:
                assert response.status_code == 200, response.text
                assert response.headers["Content-Type"].startswith("text/event-stream")
                results[index] = events(response)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=follower, args=(i,)) for i in range(FOLLOWERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures[:3]
    assert len(results) == FOLLOWERS
    for pages in results.values():
        chunks = [chunk for page in pages for chunk in page["chunks"]]
        seqs = [chunk["seq"] for chunk in chunks]
        assert seqs == sorted(set(seqs)), "every chunk once, in order"
        assert "".join(c["text"] for c in chunks if c["stream"] == "stdout") == expected_stdout()
        assert "".join(c["text"] for c in chunks if c["stream"] == "stderr") == "bye\n"
        assert [page["ended"] for page in pages].count(True) == 1 and pages[-1]["ended"]
        assert pages[-1]["status"] == "failed"
        assert pages[-1]["stdout_bytes"] == len(expected_stdout())


def test_a_follower_resumes_from_last_event_id_and_an_ended_run_is_one_stream(gunicorn_api, auth_headers):
    run_id = start_printer(gunicorn_api, auth_headers, lines=5, pause=0.05)
    with Client(gunicorn_api, token=auth_headers["Authorization"].split()[1]) as hydra:
        statuses: list[str] = []
        chunks = list(hydra.follow(run_id, on_status=statuses.append, timeout=300))
        assert "".join(c.text for c in chunks if c.stream == "stdout") == expected_stdout(5)
        assert statuses[-1] == "failed"
        last = chunks[-1].seq
    # the run has ended: what follows a chunk, then the end, in one stream
    with requests.get(
        f"{gunicorn_api}/runs/{run_id}/output/events",
        headers={**auth_headers, "Last-Event-ID": str(last - 1)},
        stream=True,
        timeout=60,
    ) as response:
        pages = events(response)
    assert [c["seq"] for page in pages for c in page["chunks"]] == [last]
    assert pages[-1]["ended"] and pages[-1]["status"] == "failed"


def test_following_is_authorized_as_reading_the_run(gunicorn_api, auth_headers):
    run_id = start_printer(gunicorn_api, auth_headers, lines=1, pause=0)
    nobody = requests.get(f"{gunicorn_api}/runs/{run_id}/output/events", timeout=30)
    assert nobody.status_code == 401
    missing = requests.get(f"{gunicorn_api}/runs/no-such-run/output/events", headers=auth_headers, timeout=30)
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("application/json")
    bad = requests.get(f"{gunicorn_api}/runs/{run_id}/output/events?after=-5", headers=auth_headers, timeout=30)
    assert bad.status_code == 422 and "after" in bad.text
