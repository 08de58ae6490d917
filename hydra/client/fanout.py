"""The client's calls about fan-outs (a job with ``placement.mode: all``): how one went,
worker by worker, and waiting for it to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hydra.client.errors import WaitTimeout
from hydra.client.operations import operation, segment
from hydra.client.records import Fanout


class Fanouts:
    """Mixed into :class:`hydra.client.Client` (which gives ``request``)."""

    request: Callable[..., Any]  # the Client's

    @operation("GET /jobs/{job_id}/fanout")
    def job_fanout(self, job_id: str, fanout_id: str | None = None) -> Fanout:
        """A fan-out of the job (default: its latest): each worker's run and state, and the
        workers grouped (succeeded, failed, lost, not reached, in progress)."""
        params = {"fanout_id": fanout_id} if fanout_id else None
        return Fanout.from_json(self.request("GET", f"/jobs/{segment(job_id)}/fanout", params=params))

    def wait_fanout(
        self, job_id: str, fanout_id: str | None = None, *, timeout: float | None = None, poll: float = 1.0
    ) -> Fanout:
        """The fan-out once every worker's run ended (or was skipped). Raises WaitTimeout after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.job_fanout(job_id, fanout_id)
            if found.done:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"fan-out {found.id} of job {job_id}: {', '.join(found.in_progress)} still running")
            time.sleep(poll)
