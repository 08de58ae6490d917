"""A message is validated once per delivery: ``admit`` keeps what it validated on the request,
and the task runs that; a request this process did not admit is refused, never run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hydra.celery import worker
from hydra.errors import Refused
from hydra.model.message import load_message


def test_the_task_runs_what_admit_validated():
    message = load_message({"command": "echo hi", "user": "alice", "job_id": "j1"})
    request = SimpleNamespace(hydra_admitted="r1", hydra_message=message)
    assert worker.admitted_message("r1", request) is message


@pytest.mark.parametrize(
    "request_",
    [
        SimpleNamespace(),  # admit never ran
        SimpleNamespace(hydra_admitted="r2", hydra_message={"command": "echo other"}),  # another run's
        SimpleNamespace(hydra_admitted="r1"),  # admitted, but nothing kept
        None,
    ],
)
def test_a_request_this_process_did_not_admit_is_refused(request_):
    with pytest.raises(Refused):
        worker.admitted_message("r1", request_)
