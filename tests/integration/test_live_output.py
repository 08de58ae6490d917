"""Live output on the real stack: chunks visible while the command runs, follow mode, the cap."""

from __future__ import annotations

import statistics
import time

from tests.helpers import submit, wait_run, wait_until


def read_all(api, run_id: str, after: int = -1, wait: float = 0) -> dict:
    response = api.get(f"/runs/{run_id}/output", query_string={"after": after, "wait": wait})
    assert response.status_code == 200, response.json
    return response.json


def test_lines_are_visible_within_a_second_while_the_command_runs(api, stack):
    # Each line carries the time it was written; the test notes when it first sees it.
    command = 'for i in 1 2 3 4; do echo "$i $(date +%s.%N)"; echo "err$i" >&2; sleep 1; done'
    run_id = submit(api, command, timeout=60)["run_id"]
    seen: dict[str, float] = {}
    stderr = ""
    after, page = -1, {"ended": False}
    deadline = time.monotonic() + 60
    while not page["ended"] and time.monotonic() < deadline:
        page = read_all(api, run_id, after, wait=5)
        now = time.time()
        for chunk in page["chunks"]:
            if chunk["stream"] == "stderr":
                stderr += chunk["text"]
                continue
            for line in chunk["text"].splitlines():
                seen.setdefault(line, now)
        after = page["next"]
        if page["status"] == "running" and seen:
            assert not page["ended"]
    assert page["ended"] and page["status"] == "succeeded"
    assert [line.split()[0] for line in seen] == ["1", "2", "3", "4"]
    latencies = [seen[line] - float(line.split()[1]) for line in seen]
    # The requirement is 1 s; the ceiling is looser because this machine is shared.
    assert statistics.median(latencies) < 1.0, latencies
    assert max(latencies) < 2.0, latencies
    assert stderr == "err1\nerr2\nerr3\nerr4\n"
    assert page["stdout_bytes"] == sum(len(line) + 1 for line in seen) and page["stderr_bytes"] == 20
    # The record and the live chunks agree.
    record = wait_run(run_id)
    assert record.stdout == "".join(line + "\n" for line in seen)


def test_follow_mode_waits_for_output_and_reports_the_end(api, stack):
    run_id = submit(api, "sleep 2; echo late")["run_id"]
    wait_until(lambda: read_all(api, run_id)["status"] == "running", 30, message="running")
    started = time.monotonic()
    page = read_all(api, run_id, wait=8)
    assert page["chunks"] and page["chunks"][0]["text"] == "late\n"
    assert 0.5 < time.monotonic() - started < 8  # held until the output came, not to the limit
    page = read_all(api, run_id, page["next"], wait=8)
    assert page["ended"] and page["chunks"] == [] and page["status"] == "succeeded"


def test_live_output_is_capped_per_stream_and_the_cut_is_marked(api, stack):
    run_id = submit(api, "head -c 300000 /dev/zero | tr '\\0' x; echo tail >&2")["run_id"]
    wait_run(run_id)
    chunks, after = [], -1
    while True:
        page = read_all(api, run_id, after)
        chunks += page["chunks"]
        after = page["next"]
        if page["ended"]:
            break
    stdout = [c for c in chunks if c["stream"] == "stdout"]
    # The head while it ran, then, once it ended, the rest (its tail: 37856 bytes, under half the limit).
    cut = next(i for i, c in enumerate(stdout) if c["cut"])
    assert "".join(c["text"] for c in stdout[:cut]) == "x" * (256 * 1024)
    assert "passed 262144 bytes" in stdout[cut]["text"] and not any(c["cut"] for c in stdout[cut + 1 :])
    assert "".join(c["text"] for c in stdout[cut + 1 :]) == "x" * (300000 - 256 * 1024)
    assert [c["text"] for c in chunks if c["stream"] == "stderr"] == ["tail\n"]
    assert page["stdout_bytes"] == 300000
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))


def test_output_of_unknown_run_is_404_and_bad_cursor_is_422(api, stack):
    assert api.get("/runs/nope/output").status_code == 404
    response = api.get("/runs/nope/output?after=-5")
    assert response.status_code == 422 and "after" in response.json["errors"]["query"]


def test_followers_beyond_the_limit_take_turns_instead_of_holding_threads(api, stack):
    """HYDRA_MAX_FOLLOWERS (2 here) output requests are served at once per API process; one
    more is answered at once, without chunks, telling the client when to ask again."""
    import threading

    from hydra.settings import get_settings

    limit = get_settings().max_followers
    run_id = submit(api, "sleep 6; echo done", timeout=60)["run_id"]
    wait_run(run_id, statuses=["running"])
    held = [threading.Thread(target=read_all, args=(api, run_id, -1, 3)) for _ in range(limit)]
    for thread in held:
        thread.start()
    time.sleep(0.5)  # both are waiting for output now
    started = time.monotonic()
    turned_away = read_all(api, run_id, -1, wait=3)
    assert time.monotonic() - started < 1.5  # not held
    assert turned_away["chunks"] == [] and not turned_away["ended"] and 1 <= turned_away["retry_after"] <= 2
    assert turned_away["status"] == "running"
    for thread in held:
        thread.join()
    page = read_all(api, run_id, -1, wait=0)
    assert page.get("retry_after") is None  # a turn is free again
    assert api.get("/runs/nope/output", query_string={"wait": 1}).status_code == 404
