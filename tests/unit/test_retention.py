"""Retention on in-memory servers: old runs go with their fences and output (exported first
when asked), jobs with their last run unless a cron schedule still uses them, runs in
progress stay however old, and each pass does a bounded amount of work by _id."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from hydra import clock, names
from hydra.control import archive, verbs
from hydra.dispatch.attempts import end_attempt
from hydra.errors import Forbidden
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.records import Chunk, OutputEnd
from hydra.model.spec import load_job
from hydra.settings import Settings
from hydra.store.base import Store
from hydra.store.output import OutputStore
from hydra.store.retention import Retention, cutoff_of

#: Submits in any namespace, as anyone.
ADMIN = Principal(user="admin", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:admin")

BODY = {"name": "n", "user": "rich", "command": "true", "affinity": {"os": ["linux"]}}
LATER = timedelta(days=45)


def finished_job(memory, *, chunks=0, status="succeeded", **overrides):
    job, run, _ = verbs.submit(load_job(dict(BODY, **overrides)), actor=ADMIN, pipeline=memory.pipeline)
    message = next(s.kwargs for s in memory.app.sent if s.options["task_id"] == run.run_id)
    memory.pipeline.runs.claim(run.run_id, message=message, worker_id="cpu1@host")
    OutputStore().insert(
        [Chunk(id=names.output_chunk_id(run.run_id, i), run_id=run.run_id, seq=i, text="x") for i in range(chunks)]
        + [OutputEnd(id=names.output_eof_id(run.run_id), run_id=run.run_id, chunks=chunks)]
    )
    end_attempt(
        run.run_id,
        Outcome(status=status, returncode=0, live_chunks=chunks),
        by="cpu1@host",
        job=job,
        attempt=1,
        pipeline=memory.pipeline,
    )
    return job, run.run_id


def everything(memory) -> dict[str, int]:
    return {
        c: memory.db[c].count_documents({})
        for c in (names.JOB_DEFINITIONS, names.JOB_RUNS, names.RUN_FENCES, names.RUN_OUTPUT)
    }


def retention(memory, tmp_path=None, **settings):
    return Retention(memory.pipeline.runs, Settings(retention_export=str(tmp_path) if tmp_path else None, **settings))


def test_old_runs_go_with_their_fences_and_output_after_being_exported(memory, tmp_path):
    memory.worker("cpu1")
    job, run_id = finished_job(memory, chunks=3)
    waiting, _, _ = verbs.submit(
        load_job(dict(BODY, name="waits")), actor=ADMIN, pipeline=memory.pipeline
    )  # queued, never ends
    assert retention(memory).prune() == {"runs": 0, "jobs": 0}  # nothing is 30 days old yet
    counts = retention(memory, tmp_path).prune(clock.utcnow() + LATER)
    assert counts == {"runs": 1, "jobs": 1}
    assert memory.pipeline.runs.find(run_id) is None and memory.pipeline.jobs.find(job.id) is None
    assert memory.db[names.RUN_FENCES].count_documents({"run_id": run_id}) == 0
    assert memory.db[names.RUN_OUTPUT].count_documents({"run_id": run_id}) == 0
    assert memory.pipeline.jobs.find(waiting.id) is not None  # its run is still in progress
    [line] = (tmp_path / f"hydra-runs-{clock.utcnow():%Y-%m-%d}.jsonl").read_text().splitlines()
    exported = json.loads(line)
    assert (exported["id"], exported["status"], exported["job_id"]) == (run_id, "succeeded", job.id)
    assert [j.id for j in memory.pipeline.jobs.list()[0]] == [waiting.id]


def test_a_cron_job_keeps_its_definition_and_a_deleted_one_goes(memory):
    memory.worker("cpu1")
    cron, _, _ = verbs.submit(load_job(dict(BODY, schedule="0 * * * *")), actor=ADMIN, pipeline=memory.pipeline)
    gone, _, _ = verbs.submit(load_job(dict(BODY, schedule="0 * * * *")), actor=ADMIN, pipeline=memory.pipeline)
    verbs.delete(gone.id, actor=ADMIN, pipeline=memory.pipeline)
    assert retention(memory).prune(clock.utcnow() + LATER)["jobs"] == 1
    assert memory.pipeline.jobs.find(cron.id) is not None and memory.pipeline.jobs.find(gone.id) is None


def test_passes_are_bounded_and_resume_where_the_last_one_stopped(memory, monkeypatch):
    memory.worker("cpu1")
    for i in range(7):
        finished_job(memory, name=f"j{i}", status="failed" if i % 2 else "succeeded")
    refused = []
    monkeypatch.setattr(Store, "_cursor", lambda self, name, *a, **k: refused.append(name))
    pruner = retention(memory, retention_batch=3)
    later = clock.utcnow() + LATER
    passes = [pruner.prune(later)["runs"] for _ in range(5)]
    assert max(passes) == 3 and sum(passes) == 7 and passes[-1] == 0 and not refused  # <= batch each, by _id
    assert everything(memory) == {names.JOB_DEFINITIONS: 0, names.JOB_RUNS: 0, names.RUN_FENCES: 0, names.RUN_OUTPUT: 0}
    assert memory.redis.keys(names.index_prefix("default") + "runs:*") == []
    assert memory.redis.keys(names.index_prefix("default") + "ends:*") == []  # the jobs' last runs went too


def test_retention_keeps_at_least_a_day_and_zero_keeps_everything(memory):
    now = clock.utcnow()
    assert cutoff_of(0, now) is None and cutoff_of(0.01, now) == now - timedelta(days=1)
    memory.worker("cpu1")
    finished_job(memory)
    assert retention(memory, retention_days=0).prune(now + LATER) == {"runs": 0, "jobs": 0}


def test_the_export_is_what_retention_would_prune_and_only_for_admins(memory):
    memory.worker("cpu1")
    _, run_id = finished_job(memory)
    lines = list(archive.export_runs(ADMIN, older_than=0, namespaces=[]))
    assert [json.loads(line)["id"] for line in lines] == [run_id] and lines[0].endswith("\n")
    assert list(archive.export_runs(ADMIN, older_than=None, namespaces=[])) == []  # 30 days: nothing that old
    assert memory.pipeline.runs.find(run_id) is not None  # exporting deletes nothing
    operator = Principal(user="ana", roles={"default": Role.OPERATOR}, act_as=frozenset(), via="token:ana")
    with pytest.raises(Forbidden, match="may not export any namespace"):
        archive.export_runs(operator, older_than=0, namespaces=[])
    team_admin = Principal(user="bo", roles={"default": Role.ADMIN}, act_as=frozenset(), via="token:bo")
    assert len(list(archive.export_runs(team_admin, older_than=0, namespaces=[]))) == 1
    with pytest.raises(Forbidden, match="may not export namespace 'other'"):
        archive.export_runs(team_admin, older_than=0, namespaces=["other"])
