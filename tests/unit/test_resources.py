"""Resource limits and per-job concurrency: the body's rules, the namespace's defaults and maxima,
placement on workers that can enforce limits, the cgroup files written (v1 and v2), and
``max_concurrent`` places taken and freed like the namespaces' quotas (in-memory stores)."""

from __future__ import annotations

import pytest

from hydra import clock
from hydra.broker.registry import WorkerRecord
from hydra.control import verbs
from hydra.dispatch.attempts import end_attempt
from hydra.errors import InvalidJob
from hydra.execution import cgroups, limits
from hydra.execution.limits import Limits
from hydra.model.access import Principal, Role
from hydra.model.affinity import Requirements, WorkerProfile, explain, mismatch
from hydra.model.message import execution_digest, load_message, message_kwargs
from hydra.model.outcome import Outcome
from hydra.model.resources import NamespaceResources, concurrency_limit, settle
from hydra.model.spec import load_job
from hydra.model.status import RunStatus
from hydra.store.namespaces import NamespaceLimits, NamespaceStore

BODY = {"name": "r", "user": "u", "command": "true"}
ADMIN = Principal(user="u", roles={"*": Role.ADMIN}, act_as=frozenset({"*"}), via="token:test")


def errors_of(body: dict) -> dict:
    with pytest.raises(InvalidJob) as caught:
        load_job(body)
    return caught.value.errors


# -- the body's rules ---------------------------------------------------------------------------


def test_resources_take_memory_in_mib_and_cpu_in_cores_with_fractions():
    job = load_job({**BODY, "resources": {"memory_mb": 64, "cpu": 0.5}, "max_concurrent": 2})
    assert job["resources"] == {"memory_mb": 64, "cpu": 0.5} and job["max_concurrent"] == 2
    assert load_job({**BODY, "resources": {"cpu": 2}})["resources"] == {"cpu": 2.0}
    assert load_job({**BODY, "resources": {}})["resources"] is None  # nothing asked: no limits
    assert load_job(BODY)["resources"] is None and load_job(BODY)["max_concurrent"] is None


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"memory_mb": 0}, "memory_mb"),
        ({"memory_mb": 1.5}, "memory_mb"),
        ({"memory_mb": "64"}, "memory_mb"),
        ({"cpu": 0}, "cpu"),
        ({"cpu": -1}, "cpu"),
        ({"cpu": "half"}, "cpu"),
        ({"cpu": 5000}, "cpu"),
        ({"disk_mb": 5}, "disk_mb"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(resources, field):
    assert field in errors_of({**BODY, "resources": resources})["resources"]


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", 10_001])
def test_max_concurrent_is_a_positive_integer(value):
    assert "max_concurrent" in errors_of({**BODY, "max_concurrent": value})


def test_overlap_forbid_means_one_and_contradicting_it_is_refused():
    assert concurrency_limit(load_job({**BODY, "overlap": "forbid"})) == 1
    assert load_job({**BODY, "overlap": "forbid", "max_concurrent": 1})["max_concurrent"] == 1
    assert "one run at a time" in errors_of({**BODY, "overlap": "forbid", "max_concurrent": 3})["max_concurrent"][0]
    assert concurrency_limit(load_job(BODY)) is None


def test_an_http_job_takes_no_resources():
    body = {"name": "h", "executor": "http", "http": {"url": "https://example.com/"}, "resources": {"cpu": 1}}
    assert "resources" in errors_of(body)


def test_the_message_carries_the_limits_and_overlap_forbid_as_max_concurrent_1():
    job = load_job({**BODY, "overlap": "forbid", "resources": {"memory_mb": 64}})
    message = load_message(message_kwargs(job, job_id="j1", attempt=1))
    assert message["max_concurrent"] == 1 and message["resources"] == {"memory_mb": 64}
    # the worker checks what runs against the record: the limits are part of it
    plain = load_message(message_kwargs(load_job(BODY), job_id="j1", attempt=1))
    assert execution_digest(message) != execution_digest({**message, "resources": {"memory_mb": 128}})
    assert plain["resources"] is None and execution_digest(plain) == execution_digest({**plain, "resources": None})


# -- a namespace's defaults and maxima -----------------------------------------------------------


def test_a_namespace_fills_in_defaults_and_refuses_more_than_its_maximum():
    rules = NamespaceResources(default_memory_mb=256, max_memory_mb=1024, max_cpu=2.0)
    assert settle({**BODY}, rules)["resources"] == {"memory_mb": 256, "cpu": 2.0}
    assert settle({**BODY, "resources": {"cpu": 0.5}}, rules)["resources"] == {"memory_mb": 256, "cpu": 0.5}
    from marshmallow import ValidationError

    with pytest.raises(ValidationError) as caught:
        settle({**BODY, "namespace": "ops", "resources": {"memory_mb": 2048, "cpu": 4}}, rules)
    assert caught.value.messages == {
        "resources": {
            "memory_mb": ["2048 is over namespace 'ops''s maximum 1024"],
            "cpu": ["4 is over namespace 'ops''s maximum 2.0"],
        }
    }
    assert settle({**BODY}, NamespaceResources()) == BODY  # no rules: nothing added


def test_submit_applies_the_namespace_rules_and_answers_422_naming_the_field(memory):
    memory.worker("w1")
    NamespaceStore().put(NamespaceLimits(id="ops", default_cpu=0.5, max_memory_mb=128), by="t")
    job, _run, _ = verbs.submit(load_job({**BODY, "namespace": "ops"}), actor=ADMIN, pipeline=memory.pipeline)
    assert job.resources == {"cpu": 0.5, "memory_mb": 128}
    with pytest.raises(InvalidJob) as caught:
        verbs.submit(
            load_job({**BODY, "namespace": "ops", "resources": {"memory_mb": 512}}),
            actor=ADMIN,
            pipeline=memory.pipeline,
        )
    assert list(caught.value.errors["resources"]) == ["memory_mb"]
    with pytest.raises(InvalidJob):  # an update cannot go over it either
        verbs.update(job.id, actor=ADMIN, patch={"resources": {"memory_mb": 4096}}, pipeline=memory.pipeline)


# -- placement ----------------------------------------------------------------------------------


def profile(name: str, *, can_limit: bool) -> WorkerProfile:
    return WorkerProfile(id=f"{name}@host", os="linux", max_concurrency=2, limits=can_limit)


def test_a_job_with_limits_goes_only_to_workers_that_can_enforce_them():
    plain, limited = profile("plain", can_limit=False), profile("cg", can_limit=True)
    wants = Requirements.from_message({"user": "u", "resources": {"cpu": 0.5}})
    assert mismatch(wants, plain) == "cannot enforce resource limits (no memory and cpu cgroup controllers)"
    assert mismatch(wants, limited) is None
    assert mismatch(Requirements.from_message({"user": "u"}), plain) is None  # no limits asked: any worker
    assert "plain@host cannot enforce resource limits" in explain(wants, [plain])
    assert WorkerProfile.from_dict(limited.to_dict()) == limited


def test_the_router_leaves_a_limited_job_pending_with_the_reason(memory):
    memory.worker("w1")  # a worker without limit controllers
    job = memory.pipeline.jobs.create(load_job({**BODY, "resources": {"memory_mb": 64}}))
    where = memory.pipeline.dispatch(job)
    assert where.status == RunStatus.PENDING
    assert "w1@host cannot enforce resource limits" in where.reason
    memory.registry.put(WorkerRecord(profile=profile("cg", can_limit=True), status="online", seen_at=clock.epoch()))
    memory.registry.forget_cache()
    assert memory.pipeline.dispatch(job).worker_id == "cg@host"


# -- per-job concurrency: places like the namespaces' quotas -------------------------------------


def dispatch_all(memory, job, count):
    return [memory.pipeline.dispatch(job) for _ in range(count)]


def test_max_concurrent_holds_extra_runs_pending_until_one_ends(memory):
    memory.worker("w1", concurrency=8)
    job = memory.pipeline.jobs.create(load_job({**BODY, "max_concurrent": 2}))
    placed = dispatch_all(memory, job, 3)
    assert [p.status for p in placed] == [RunStatus.QUEUED, RunStatus.QUEUED, RunStatus.PENDING]
    assert placed[2].reason == f"job {job.id} has 2 runs in flight (max_concurrent 2)"
    slots = memory.pipeline.router.slots
    assert slots.job_held(job.id) == {placed[0].run_id, placed[1].run_id}
    other = memory.pipeline.jobs.create(load_job(BODY))  # other jobs are not held up
    assert memory.pipeline.dispatch(other).status == RunStatus.QUEUED
    end_attempt(
        placed[0].run_id, Outcome(status="succeeded"), by="w1@host", job=job, attempt=1, pipeline=memory.pipeline
    )
    assert slots.job_held(job.id) == {placed[1].run_id}
    message = load_message(message_kwargs(job.spec(), job_id=job.id, attempt=1))
    assert memory.pipeline.router.choose(message, placed[2].run_id).worker is not None  # its turn now


def test_overlap_forbid_holds_a_manual_run_while_another_is_in_flight(memory):
    memory.worker("w1", concurrency=8)
    job = memory.pipeline.jobs.create(load_job({**BODY, "overlap": "forbid", "schedule": "* * * * *"}))
    first, second = dispatch_all(memory, job, 2)
    assert first.status == RunStatus.QUEUED and second.status == RunStatus.PENDING
    assert "max_concurrent 1" in second.reason


def test_the_controller_frees_job_places_of_runs_that_ended_elsewhere(memory):
    from hydra.control.controller import Controller

    memory.worker("w1", concurrency=8)
    job = memory.pipeline.jobs.create(load_job({**BODY, "max_concurrent": 1}))
    (first,) = dispatch_all(memory, job, 1)
    memory.pipeline.runs.finish(first.run_id, Outcome(status="cancelled"), status=RunStatus.CANCELLED, by="x")
    slots = memory.pipeline.router.slots
    assert slots.job_held(job.id) == set()  # the end's index script freed it
    slots.hold("default", first.run_id, running=False, job_id=job.id)  # as if that script never reached Redis
    assert slots.jobs() == [job.id]
    assert Controller(memory.app, pipeline=memory.pipeline).sweeps.correct_quotas() >= 1
    assert slots.job_held(job.id) == set() and slots.jobs() == []
    assert memory.pipeline.dispatch(job).status == RunStatus.QUEUED


# -- the cgroup files ---------------------------------------------------------------------------


def test_limits_become_v1_and_v2_values():
    both = Limits(memory_mb=64, cpu=0.5)
    assert limits.v1_files(both) == {
        "memory": [("memory.limit_in_bytes", "67108864"), ("memory.memsw.limit_in_bytes", "67108864")],
        "cpu": [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")],
    }
    assert limits.v2_files(both) == [("memory.max", "67108864"), ("memory.swap.max", "0"), ("cpu.max", "50000 100000")]
    assert limits.v2_files(Limits(cpu=2)) == [("cpu.max", "200000 100000")]
    assert Limits.of({"memory_mb": None}) is None and Limits.of(None) is None


def test_a_v2_run_cgroup_gets_its_limits_and_its_parents_enable_the_controllers(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    kind = cgroups.V2(tmp_path)
    assert kind.can_limit
    group = kind.run("w@host", "run1", Limits(memory_mb=64, cpu=0.25))
    (tmp_path / "hydra" / "w@host" / "run1").mkdir(parents=True)
    (tmp_path / "hydra" / "w@host" / "run1" / "memory.swap.max").write_text("max")
    group.create()
    run_dir = tmp_path / "hydra" / "w@host" / "run1"
    assert (run_dir / "memory.max").read_text() == "67108864"
    assert (run_dir / "memory.swap.max").read_text() == "0"
    assert (run_dir / "cpu.max").read_text() == "25000 100000"
    for parent in (tmp_path, tmp_path / "hydra", tmp_path / "hydra" / "w@host"):
        assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu"
    (run_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_kills() == 1
    assert not cgroups.V2(tmp_path / "hydra").can_limit  # no cgroup.controllers there


def test_a_v1_run_cgroup_joins_the_limit_controllers_and_reads_oom_kills(tmp_path):
    mounts = {c: tmp_path / c for c in ("freezer", "pids", "memory", "cpu", "cpuacct")}
    kind = cgroups.V1({c: mounts[c] for c in ("freezer", "pids")}, {c: mounts[c] for c in ("memory", "cpu", "cpuacct")})
    assert kind.can_limit and not cgroups.V1({c: mounts[c] for c in ("freezer", "pids")}).can_limit
    limited = kind.run("w", "r", Limits(memory_mb=32, cpu=1.5))
    memory_dir = mounts["memory"] / "hydra" / "w" / "r"
    memory_dir.mkdir(parents=True)
    (memory_dir / "memory.memsw.limit_in_bytes").write_text("x")
    limited.create()
    assert (memory_dir / "memory.limit_in_bytes").read_text() == str(32 * 1024 * 1024)
    assert (memory_dir / "memory.memsw.limit_in_bytes").read_text() == str(32 * 1024 * 1024)
    assert (mounts["cpu"] / "hydra/w/r/cpu.cfs_quota_us").read_text() == "150000"
    joined = limited.join_argv()
    assert str(memory_dir / "cgroup.procs") in joined and str(mounts["cpuacct"] / "hydra/w/r/cgroup.procs") in joined
    assert str(memory_dir / "cgroup.procs") not in kind.run("w", "plain").join_argv()  # no limits: not joined
    (memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert limited.oom_kills() == 2
    (memory_dir / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")  # before Linux 4.13
    (memory_dir / "memory.failcnt").write_text("0\n")
    assert limited.oom_kills() == 0
    (memory_dir / "memory.failcnt").write_text("17\n")
    assert limited.oom_kills() == 1


# -- the other ways in: gRPC, the console's form ------------------------------------------------


def test_a_grpc_spec_carries_the_limits_and_a_job_message_shows_them():
    from hydra.model.records import Job
    from hydra.rpc import convert
    from hydra.v1 import hydra_pb2

    spec = hydra_pb2.JobSpec(
        name="n", command="make", resources=hydra_pb2.Resources(memory_mb=64, cpu=0.5), max_concurrent=2
    )
    body = convert.job_body(spec)
    assert body == {"name": "n", "command": "make", "resources": {"memory_mb": 64, "cpu": 0.5}, "max_concurrent": 2}
    assert load_job(body)["resources"] == {"memory_mb": 64, "cpu": 0.5}
    shown = convert.job_message(Job(id="j", name="n", resources={"memory_mb": 64}, max_concurrent=2))
    assert shown.resources.memory_mb == 64 and not shown.resources.HasField("cpu") and shown.max_concurrent == 2


def test_the_console_form_fills_in_limits_and_their_errors_land_beside_them():
    from marshmallow import ValidationError

    from api.console.forms import body_of, field_errors
    from hydra.model.spec import JobSpecSchema

    body, problems = body_of({"name": "f", "command": "x", "memory_mb": "64", "cpu": "0.5", "max_concurrent": "3"})
    assert not problems and body["resources"] == {"memory_mb": 64, "cpu": 0.5} and body["max_concurrent"] == 3
    assert JobSpecSchema().load(body)["resources"] == {"memory_mb": 64, "cpu": 0.5}
    bad, _ = body_of({"name": "f", "command": "x", "memory_mb": "lots", "cpu": "0", "max_concurrent": "0"})
    with pytest.raises(ValidationError) as caught:
        JobSpecSchema().load(bad)
    errors = field_errors(caught.value.messages)
    assert errors["memory_mb"] == ["Not a valid integer."]
    assert errors["cpu"] and errors["max_concurrent"] and "_form" not in errors


def test_limits_in_words():
    from hydra.model import wording

    assert wording.limits({"memory_mb": 512, "cpu": 0.5}) == "512 MiB memory, 0.5 cpu (each run)"
    assert wording.limits({"cpu": 2.0}) == "2 cpu (each run)" and wording.limits({}) == "none"


def test_job_files_carry_the_limits():
    from hydra.model.jobfile import SETTABLE

    assert {"resources", "max_concurrent"} <= set(SETTABLE)


def test_a_fan_outs_runs_count_against_max_concurrent(memory):
    from hydra.store.fanouts import FanoutStore

    for name in ("a", "b"):
        memory.worker(name, tags=("linux-box",))
    body = {**BODY, "affinity": {"tags": ["linux-box"]}, "placement": {"mode": "all"}, "max_concurrent": 1}
    _job, first, _ = verbs.submit(load_job(body), actor=ADMIN, pipeline=memory.pipeline)
    plan = FanoutStore().plan(first.run_id)
    runs = [memory.pipeline.runs.get(plan.runs[worker]) for worker in plan.workers]
    assert sorted(r.status for r in runs) == [RunStatus.PENDING.value, RunStatus.QUEUED.value]
    held = next(r for r in runs if r.status == RunStatus.PENDING.value)
    assert "max_concurrent 1" in held.pending_reason
