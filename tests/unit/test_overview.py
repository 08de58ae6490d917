"""A job's last runs and the console's home page (hydra.control.overview), on in-memory servers:
kept as attempts end (once each, the newest RECENT_ENDS), restored by the controller's
rebuild and its backlog, gone with retention; read with no MongoDB filter at all."""

from __future__ import annotations

from datetime import timedelta

from hydra import clock, names
from hydra.broker.index_entries import RECENT_ENDS
from hydra.control import overview
from hydra.control.access import Reader
from hydra.errors import BrokerUnavailable
from hydra.model.access import Principal, Role
from hydra.model.outcome import Outcome
from hydra.model.status import RunStatus
from hydra.store.base import Store
from hydra.store.reindex import Reindexer
from hydra.store.workers import WorkerStore, WorkerView
from tests.unit.test_indexes import ADMIN, claim, end, submit

VIEWER_A = Principal(user="vic", roles={"team-a": Role.VIEWER})


def run_again(memory, job_id):
    """Trigger the job and return the new run's id."""
    from hydra.control import verbs

    return verbs.trigger(job_id, actor=ADMIN, pipeline=memory.pipeline).run_id


def ends_of(job_id):
    job = Reader(ADMIN).jobs.get(job_id)
    return overview.summaries(Reader(ADMIN), [job])[job_id]


def test_each_end_is_kept_once_newest_first_and_only_the_latest_few(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    claim(memory, run.run_id)
    end(memory, run.run_id, "failed", returncode=1, duration=2.5)
    summary = ends_of(job.id)
    assert [(e.run_id, e.status, e.duration) for e in summary.ends] == [(run.run_id, "failed", 2.5)]
    assert summary.success_rate == 0.0
    # the end applied again (a late worker's result re-applies the recorded end): nothing new
    assert not memory.pipeline.runs.finish(run.run_id, Outcome(status="succeeded"), status=RunStatus.SUCCEEDED, by="w")
    assert len(ends_of(job.id).ends) == 1
    ids = [run.run_id]
    for i in range(RECENT_ENDS + 4):
        run_id = run_again(memory, job.id)
        claim(memory, run_id)
        end(memory, run_id, "succeeded" if i % 4 else "timed_out", returncode=0, duration=float(i))
        ids.append(run_id)
    summary = ends_of(job.id)
    assert [e.run_id for e in summary.ends] == ids[::-1][:RECENT_ENDS]
    assert summary.last.run_id == ids[-1] and summary.last.at == clock.millis(
        memory.pipeline.runs.get(ids[-1]).finished_at
    )
    assert summary.succeeded == sum(1 for e in summary.ends if e.status == "succeeded") == 15
    assert summary.success_rate == 15 / RECENT_ENDS


def test_a_run_that_has_not_ended_is_not_among_the_ends(memory):
    memory.worker("cpu1")
    job, run = submit(memory)
    claim(memory, run.run_id)
    assert ends_of(job.id).ends == [] and ends_of(job.id).success_rate is None


def test_a_rebuild_and_the_backlog_restore_the_ends(memory, monkeypatch):
    memory.worker("cpu1")
    jobs = []
    for status in ("succeeded", "failed", "cancelled"):
        job, run = submit(memory, name=status)
        claim(memory, run.run_id)
        end(memory, run.run_id, status, returncode=0, duration=1.25)
        jobs.append(job.id)
    before = {job_id: ends_of(job_id).ends for job_id in jobs}
    assert all(before.values())
    memory.redis.flushall()
    assert all(ends_of(job_id).ends == [] for job_id in jobs)  # unknown until rebuilt, never made up
    Reindexer(memory.pipeline.runs).rebuild()
    assert {job_id: ends_of(job_id).ends for job_id in jobs} == before
    # an end recorded while Redis was unreachable is filed from the backlog
    job, run = submit(memory, name="while-down")
    claim(memory, run.run_id)
    index = memory.pipeline.runs.index

    def down(*args, **kwargs):
        raise BrokerUnavailable("Redis unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(index, "_run", down)
        end(memory, run.run_id, "succeeded", returncode=0, duration=0.5)
    assert ends_of(job.id).ends == []
    Reindexer(memory.pipeline.runs).drain_backlog()
    assert [(e.run_id, e.status, e.duration) for e in ends_of(job.id).ends] == [(run.run_id, "succeeded", 0.5)]


def test_next_run_is_the_cron_tick_or_the_one_off_start(memory):
    memory.worker("cpu1")
    cron, _ = submit(memory, schedule="0 3 * * *", timezone="Europe/Paris")
    later = (clock.utcnow() + timedelta(days=2)).isoformat()
    once, _ = submit(memory, scheduled_at=later)
    now_job, _ = submit(memory)
    jobs = [Reader(ADMIN).jobs.get(j.id) for j in (cron, once, now_job)]
    found = overview.summaries(Reader(ADMIN), jobs)
    assert found[cron.id].next_kind == "cron" and found[cron.id].next_run == jobs[0].next_run_at()
    assert found[once.id].next_kind == "once" and found[once.id].next_run == jobs[1].scheduled_at
    assert (found[now_job.id].next_run, found[now_job.id].next_kind) == (None, None)


def test_the_home_page_counts_from_redis_and_shows_what_the_caller_may_see(memory, monkeypatch):
    for where in ("hydra.broker.series.get_redis", "hydra.control.charts.get_redis"):
        monkeypatch.setattr(where, lambda timeout=None: memory.redis)
    memory.worker("cpu1")
    for name, status in (("cpu1@host", "online"), ("gpu1@host", "offline")):  # as the controller lists them
        WorkerStore().put(WorkerView(id=name, status=status, queue=names.worker_queue(name)))
    made = {}
    for ns in ("default", "team-a"):
        for status in ("succeeded", "failed", "timed_out"):
            job, run = submit(memory, namespace=ns, name=f"{ns}-{status}", retries=0)
            claim(memory, run.run_id)
            end(memory, run.run_id, status, returncode=0 if status == "succeeded" else 1, duration=1.0)
            made[(ns, status)] = job.id
    submit(memory, namespace="team-a", name="waits", affinity={"os": ["linux"], "tags": ["nowhere"]})
    admin = overview.overview(Reader(ADMIN))
    assert {job.id for job in admin.failing} == {made[k] for k in made if k[1] != "succeeded"}
    assert admin.failing_counts == {"failed": 2, "timed_out": 2, "dead_letter": 0}
    assert admin.dead_letters == 0
    assert admin.ended == {"failed": 2, "succeeded": 2, "timed_out": 2}
    assert (admin.workers_online, admin.workers_offline) == (["cpu1@host"], ["gpu1@host"])
    assert admin.waiting == 0 and [q["worker"] for q in admin.queues] == ["cpu1@host", "gpu1@host"]
    assert admin.summaries[made[("team-a", "failed")]].last.status == "failed"
    viewer = overview.overview(Reader(VIEWER_A))
    assert {job.id for job in viewer.failing} == {made[("team-a", "failed")], made[("team-a", "timed_out")]}
    assert viewer.failing_counts == {"failed": 1, "timed_out": 1, "dead_letter": 0}
    assert viewer.ended == {"failed": 1, "succeeded": 1, "timed_out": 1}
    assert viewer.pending is None  # the pending queue holds every namespace's runs
    memory.redis.flushall()
    lost = overview.overview(Reader(ADMIN))
    assert lost.failing_counts == {"failed": None, "timed_out": None, "dead_letter": None}  # unknown, not 0
    assert lost.dead_letters is None
    assert {job.id for job in lost.failing} == {made[k] for k in made if k[1] != "succeeded"}  # MongoDB meanwhile


def test_their_cost_does_not_grow_with_the_history(memory, monkeypatch):
    """The home page and a page of summaries read no MongoDB filter but the workers' (a list of
    the fleet, not of history), and fetch the same few records by _id with 1 or 40 runs a job."""
    for where in ("hydra.broker.series.get_redis", "hydra.control.charts.get_redis"):
        monkeypatch.setattr(where, lambda timeout=None: memory.redis)
    memory.worker("cpu1")
    jobs = []
    for i in range(12):
        job, run = submit(memory, name=f"j{i}", namespace="team-a" if i % 2 else "default")
        claim(memory, run.run_id)
        end(memory, run.run_id, "failed" if i % 3 else "succeeded", returncode=1, duration=0.1)
        jobs.append(job.id)

    def cost() -> tuple[list[str], int]:
        native, fetched = [], []
        with monkeypatch.context() as patch:
            patch.setattr(Store, "_cursor", lambda self, name, *a, **k: native.append(name) or iter(()))
            real = Store._docs
            patch.setattr(
                Store, "_docs", lambda self, coll, ids: fetched.append(len(list(ids))) or real(self, coll, ids)
            )
            reader = Reader(ADMIN)
            overview.overview(reader)
            overview.summaries(reader, list(reader.jobs.find_many(jobs).values()))
        return native, sum(fetched)

    before = cost()
    for job_id in [j for i, j in enumerate(jobs) if i % 3][:4]:  # a long history for a few failing jobs
        for _ in range(40):
            run_id = run_again(memory, job_id)
            claim(memory, run_id)
            end(memory, run_id, "failed", returncode=1, duration=0.1)
    assert cost() == before and before[0] == ["workers"]  # the same reads: 8 failing jobs, the page's 12
