"""Job dependencies (on_success / on_failure / on_completion): the rules checked when a job is
stored (hydra.dispatch.dependants), the jobs a run's final end starts - once, by the end-fence
winner, recorded due now for the controller where it cannot sign - and how pausing and
deleting a downstream job shows (hydra.dispatch.continuation, hydra.control.related)."""

from __future__ import annotations

import pytest

from hydra.control import related, verbs
from hydra.dispatch import signing
from hydra.dispatch.attempts import end_attempt
from hydra.dispatch.steps import unsent
from hydra.errors import Conflict, InvalidJob
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.spec import load_job
from hydra.settings import get_settings
from hydra.store.flows import FlowStore

ALICE = Principal(user="alice", roles={"default": Role.ADMIN}, via="token:alice")
#: May read team-b but not submit there.
WATCHER = Principal(user="alice", roles={"default": Role.OPERATOR, "team-b": Role.VIEWER}, via="token:w")


def make(memory, name: str, actor: Principal = ALICE, **body):
    spec = load_job({"name": name, "command": f"echo {name}", **body})
    job, run, _ = verbs.submit(spec, actor=actor, pipeline=memory.pipeline)
    return job, run


def end(memory, run_id: str, status: str):
    run = memory.pipeline.runs.get(run_id)
    job = memory.pipeline.jobs.get(run.job_id)
    return end_attempt(run_id, Outcome(status=status), by="cpu1@host", job=job, attempt=1, pipeline=memory.pipeline)


def runs_of(memory, job_id: str):
    return memory.pipeline.runs.for_job(job_id)


@pytest.fixture
def as_worker():
    patch = pytest.MonkeyPatch()
    handed = signing.worker_settings()
    patch.setenv("HYDRA_SIGNING_KEY_FILE", "")
    patch.setenv("HYDRA_SIGNING_KEY", "")
    for name, value in handed.items():
        patch.setenv(name, value)
    get_settings.cache_clear()
    yield
    patch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize("field", ["on_success", "on_failure", "on_completion"])
def test_a_job_that_does_not_exist_or_was_deleted_is_refused_naming_the_field(memory, field):
    memory.worker("cpu1")
    gone, _ = make(memory, "gone")
    verbs.delete(gone.id, actor=ALICE, pipeline=memory.pipeline)
    for target in ("no-such-job", gone.id):
        with pytest.raises(InvalidJob) as info:
            make(memory, "up", **{field: [target]})
        assert list(info.value.errors) == [field] and target in info.value.errors[field][0]


def test_a_job_in_a_namespace_the_caller_may_not_submit_to_is_refused(memory):
    memory.worker("cpu1")
    admin = Principal(user="root", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:root")
    theirs, _ = make(memory, "theirs", admin, namespace="team-b")
    with pytest.raises(InvalidJob) as info:
        make(memory, "up", WATCHER, on_success=[theirs.id])
    assert info.value.errors == {"on_success": [f"job {theirs.id!r}: no such job that you may start"]}


def test_a_cycle_is_refused_naming_the_field_and_the_path(memory):
    memory.worker("cpu1")
    c, _ = make(memory, "c")
    b, _ = make(memory, "b", on_success=[c.id])
    a, _ = make(memory, "a", on_failure=[b.id])
    with pytest.raises(InvalidJob) as info:
        verbs.update(c.id, actor=ALICE, patch={"on_completion": [a.id]}, pipeline=memory.pipeline)
    [problem] = info.value.errors["on_completion"]
    assert "a cycle" in problem and f"{a.id} > {b.id} > {c.id}" in problem
    with pytest.raises(InvalidJob) as info:
        verbs.update(c.id, actor=ALICE, patch={"on_success": [c.id]}, pipeline=memory.pipeline)
    assert "cannot start itself" in info.value.errors["on_success"][0]


def test_a_success_starts_on_success_and_on_completion_once_each_with_the_upstream_noted(memory):
    memory.worker("cpu1")
    deploy, _ = make(memory, "deploy", schedule="0 3 * * *")
    notify, _ = make(memory, "notify", schedule="0 3 * * *")
    page, _ = make(memory, "page", schedule="0 3 * * *")
    build, run = make(
        memory, "build", on_success=[deploy.id, notify.id], on_completion=[notify.id], on_failure=[page.id]
    )
    end(memory, run.run_id, "succeeded")
    [deployed], [notified] = runs_of(memory, deploy.id), runs_of(memory, notify.id)
    assert runs_of(memory, page.id) == [] and deployed.status == "queued"  # this process signs: published now
    upstream = FlowStore().get(deployed.id).started_by
    assert (upstream.runs, upstream.statuses, upstream.via, upstream.job_id) == (
        (run.run_id,),
        ("succeeded",),
        "on_success",
        build.id,
    )
    assert upstream.environment()["HYDRA_UPSTREAM_RUN_ID"] == run.run_id
    started = {e["job_id"]: e for e in FlowStore().get(run.run_id).started}
    assert started[deploy.id]["run_id"] == deployed.id and started[notify.id]["run_id"] == notified.id
    assert end(memory, run.run_id, "failed") is None  # a second end changes nothing, starts nothing
    assert len(runs_of(memory, notify.id)) == 1


def test_on_a_worker_the_dependants_are_recorded_due_now_for_the_controller(memory, as_worker):
    memory.worker("cpu1")
    page, _ = make(memory, "page", schedule="0 3 * * *")
    build = memory.pipeline.jobs.create(load_job({"name": "b", "user": "u", "command": "x", "on_failure": [page.id]}))
    memory.pipeline.runs.record("r1", build, attempt=1, placement=unsent("r1", OSError("a run it ran")))
    sent_before = len(memory.app.sent)
    end_attempt("r1", Outcome(status="failed"), by="cpu1@host", job=build, attempt=1, pipeline=memory.pipeline)
    [paged] = runs_of(memory, page.id)
    assert paged.status == "pending" and paged.not_before is not None and len(memory.app.sent) == sent_before


def test_a_paused_or_deleted_downstream_is_not_started_and_the_run_says_why(memory):
    memory.worker("cpu1")
    paused, _ = make(memory, "paused")
    deleted, _ = make(memory, "deleted")
    build, run = make(memory, "build", on_completion=[paused.id, deleted.id])
    verbs.pause(paused.id, actor=ALICE, pipeline=memory.pipeline)  # no schedule, but a job starts it
    verbs.delete(deleted.id, actor=ALICE, pipeline=memory.pipeline)
    end(memory, run.run_id, "succeeded")
    assert len(runs_of(memory, paused.id)) == 1  # its own first run only
    notes = {e["job_id"]: e["note"] for e in FlowStore().get(run.run_id).started}
    assert notes == {paused.id: "not started: the job is paused", deleted.id: "not started: the job was deleted"}
    seen = related.dependencies(ALICE, build.id, runs=memory.pipeline.runs)
    assert {r.id: r.state for r in seen.downstream} == {paused.id: "paused", deleted.id: "deleted"}
    assert [r.id for r in related.dependencies(ALICE, paused.id, runs=memory.pipeline.runs).upstream] == [build.id]


def test_a_cancelled_run_starts_none_of_its_dependants(memory):
    memory.worker("cpu1")
    after, _ = make(memory, "after", schedule="0 3 * * *")
    _build, run = make(memory, "build", on_completion=[after.id])
    end(memory, run.run_id, "cancelled")
    assert runs_of(memory, after.id) == []


def test_pausing_a_job_that_has_no_schedule_and_no_upstream_job_is_a_conflict(memory):
    memory.worker("cpu1")
    plain, _ = make(memory, "plain")
    with pytest.raises(Conflict, match="nothing to pause"):
        verbs.pause(plain.id, actor=ALICE, pipeline=memory.pipeline)


def test_the_upstream_view_follows_changes_and_deletions_of_the_upstream_job(memory):
    memory.worker("cpu1")
    down, _ = make(memory, "down")
    up, _ = make(memory, "up", on_success=[down.id])
    assert [r.id for r in related.dependencies(ALICE, down.id).upstream] == [up.id]
    verbs.update(up.id, actor=ALICE, patch={"on_success": None, "on_failure": [down.id]}, pipeline=memory.pipeline)
    [entry] = related.dependencies(ALICE, down.id).upstream
    assert entry.via == ["on_failure"]
    verbs.delete(up.id, actor=ALICE, pipeline=memory.pipeline)
    assert related.dependencies(ALICE, down.id).upstream == []
