"""Submit the example job and wait for its run (``python examples/submit_job.py``).

Talks to the API at $HYDRA_API_URL (default http://localhost:8000) with plain ``requests``,
authenticated with $HYDRA_TOKEN (or the token ``make up`` keeps in .hydra/admin.token);
exits 0 when the run succeeded. ``hydra.client`` does the same with typed results:

    from hydra.client import Client
    run = Client().wait(Client().submit("echo 'hello world'", user="rich", os="linux").run_id, timeout=60)
"""

import json
import os
import sys
import time

import requests

API = os.environ.get("HYDRA_API_URL", "http://localhost:8000").rstrip("/")


def token() -> str:
    if os.environ.get("HYDRA_TOKEN"):
        return os.environ["HYDRA_TOKEN"].strip()
    with open(os.environ.get("HYDRA_TOKEN_FILE", ".hydra/admin.token")) as fh:
        return fh.read().strip()


HEADERS = {"Authorization": f"Bearer {token()}"}

JOB = {
    "name": "test-echo",
    "user": "rich",
    "affinity": {"os": ["linux"], "tags": [], "allowed_users": ["rich"]},
    "command": "echo 'hello world'",
    "shell": "bash",
    "retries": 0,
    "timeout": 10,
}
ENDED = {"succeeded", "failed", "timed_out", "cancelled", "lost", "dead_letter"}


def main() -> int:
    response = requests.post(f"{API}/jobs/", json=JOB, headers=HEADERS, timeout=30)
    print(response.status_code, json.dumps(response.json(), indent=2))
    response.raise_for_status()
    job_id = response.json()["job_id"]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = requests.get(f"{API}/jobs/{job_id}/runs", headers=HEADERS, timeout=30).json()
        if runs and runs[0]["status"] in ENDED:
            run = runs[0]
            print(f"run {run['id']} {run['status']} on {run['worker_id']} (exit {run['returncode']})")
            print(f"stdout: {run['stdout']!r}")
            return 0 if run["status"] == "succeeded" else 1
        time.sleep(0.5)
    print(f"job {job_id} did not finish within 60 s; see {API}/jobs/{job_id}/runs", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
