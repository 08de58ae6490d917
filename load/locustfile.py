"""Locust users of Hydra's REST API (``make load``): each submits jobs, polls their runs,
lists jobs and follows a run's output to its end, the way the CLI and the client do.

The API is ``--host`` (``load/run.py`` passes it); the token is ``HYDRA_TOKEN``, else the
file ``HYDRA_TOKEN_FILE`` names (``.hydra/admin.token`` for ``make up``'s stack).
Requests are grouped by route in Locust's table (``/runs/[id]``, ...).
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from locust import HttpUser, between, task


def token() -> str:
    value = os.environ.get("HYDRA_TOKEN")
    if value:
        return value.strip()
    return Path(os.environ.get("HYDRA_TOKEN_FILE", ".hydra/admin.token")).expanduser().read_text().strip()


class HydraUser(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {token()}"
        self.runs: list[str] = []

    @task(3)
    def submit(self) -> None:
        body = {
            "name": "load",
            "command": f"echo load {uuid.uuid4().hex[:8]}",
            "shell": "sh",
            "timeout": 60,
            "affinity": {"os": ["linux"]},
        }
        with self.client.post("/jobs/", json=body, name="POST /jobs/", catch_response=True) as answer:
            if answer.status_code != 201:
                answer.failure(f"HTTP {answer.status_code}: {answer.text[:200]}")
                return
            run_id = answer.json().get("run_id")
            if run_id:
                self.runs = [*self.runs[-19:], run_id]

    @task(5)
    def poll(self) -> None:
        if self.runs:
            self.client.get(f"/runs/{random.choice(self.runs)}", name="GET /runs/[id]")

    @task(2)
    def list_jobs(self) -> None:
        self.client.get("/jobs/?limit=20", name="GET /jobs/?limit=20")

    @task(1)
    def follow(self) -> None:
        """Follow the latest run's output until it has ended (long polls of at most 2 s)."""
        if not self.runs:
            return
        run_id, after = self.runs[-1], -1
        for _ in range(30):
            answer = self.client.get(
                f"/runs/{run_id}/output?after={after}&wait=2", name="GET /runs/[id]/output (follow)"
            )
            if answer.status_code != 200:
                return
            page = answer.json()
            after = page["next"]
            if page["ended"]:
                return
