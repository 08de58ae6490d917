"""Celery-style submissions as a token's principal (hydra.control.tasks, the API's POST /tasks/)
and how a Python process chooses to submit through the API (hydra.celery.remote)."""

from __future__ import annotations

import pytest

from hydra import names
from hydra.celery import remote
from hydra.control import tasks
from hydra.dispatch import signing
from hydra.errors import Forbidden, InvalidJob
from hydra.model.access import Principal, Role
from hydra.settings import Settings, get_settings
from hydra.store.audit import AuditStore
from hydra.store.flows import FlowStore

OTIS = Principal(user="otis", roles={"team": Role.OPERATOR}, via="token:abc")


def sig(**kwargs) -> dict:
    return {"task": "hydra.run_command", "args": [], "kwargs": kwargs, "options": {}, "subtask_type": None}


def test_a_task_runs_as_the_token_user_in_its_home_namespace_and_is_audited(memory):
    memory.worker("cpu1")
    answer = tasks.submit(
        {"command": "true"}, {"link": sig(command="echo after")}, actor=OTIS, pipeline=memory.pipeline
    )
    run = memory.pipeline.runs.get(answer["run_id"])
    assert (run.user, run.namespace, answer["job_id"]) == ("otis", "team", run.job_id)
    [after] = FlowStore().get(run.id).continuation.on_success
    assert (after.kwargs["user"], after.kwargs["namespace"]) == ("otis", "team")  # the steps too
    events, _ = AuditStore().list()
    assert {(e.actor, e.via) for e in events} == {("otis", "token:abc apply_async")} and len(events) == 2


@pytest.mark.parametrize(
    "kwargs, options",
    [
        ({"command": "id", "namespace": "default"}, {}),
        ({"command": "id", "user": "root"}, {}),
        ({"command": "true"}, {"link": sig(command="id", namespace="default")}),
        ({"command": "true"}, {"chain": [sig(command="id", user="root")]}),
    ],
)
def test_a_task_or_step_the_principal_may_not_submit_is_forbidden_and_nothing_is_stored(memory, kwargs, options):
    memory.worker("cpu1")
    with pytest.raises(Forbidden):
        tasks.submit(kwargs, options, actor=OTIS, pipeline=memory.pipeline)
    assert memory.pipeline.jobs.list()[0] == [] and not memory.app.sent


@pytest.mark.parametrize("option", ["queue", "routing_key", "exchange", "serializer", "reply_to"])
def test_options_that_place_or_encode_the_message_are_refused_naming_them(memory, option):
    with pytest.raises(InvalidJob) as info:
        tasks.submit({"command": "true"}, {option: "x"}, actor=OTIS, pipeline=memory.pipeline)
    assert list(info.value.errors) == [f"options.{option}"]


def test_a_process_submits_through_the_api_with_a_token_and_no_signing_key(monkeypatch):
    assert signing.can_sign()  # this test process holds the key
    with_token = Settings(token="hydra_x", api_url="http://api:8000")
    assert not remote.enabled(with_token)  # auto: the key wins
    assert remote.enabled(Settings(token="hydra_x", submit_via="api"))
    assert not remote.enabled(Settings(token="hydra_x", submit_via="broker"))
    monkeypatch.setattr(remote, "can_sign", lambda: False)
    assert remote.enabled(with_token) and not remote.enabled(Settings(token=None))
    get_settings.cache_clear()


def test_what_a_client_sends_is_the_canvas_as_json_and_never_a_queue():
    sent = remote.sent_options(
        {"task_id": "t1", "link": [sig(command="x")], "task_type": object(), "producer": None, "priority": None}
    )
    assert sent == {"task_id": "t1", "link": [sig(command="x")]}
    with pytest.raises(InvalidJob) as info:
        remote.sent_options({"queue": names.worker_queue("gpu1@host")})
    assert list(info.value.errors) == ["queue"]
