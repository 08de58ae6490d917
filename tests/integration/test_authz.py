"""The authorization matrix: every operation of the OpenAPI description, crossed with no token, a
bad token, a viewer, an operator and an admin of the namespace ``team-a``, and an admin of
another namespace. Each case asserts the documented answer, and where the call was refused,
that nothing changed.

Every operation must have a row here: the test compares the rows with the description, so a
new operation cannot go unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hydra.auth import tokens
from hydra.broker.registry import Registry
from hydra.model.access import Principal, Role
from hydra.store.drains import DrainStore
from hydra.store.jobs import JobStore
from hydra.store.namespaces import NamespaceStore
from hydra.store.runs import RunStore
from hydra.store.tokens import TokenStore
from hydra.store.workers import WorkerStore, WorkerView
from tests.helpers import unique, wait_run

NS = "team-a"
PRINCIPALS = ("none", "bad", "viewer", "operator", "admin", "other")
NOBODY_TAG = "no-worker-has-this-tag"


@pytest.fixture(scope="module")
def client(stack):
    from api import create_app

    return create_app().test_client()  # no default credentials


@pytest.fixture(scope="module")
def secrets(stack) -> dict[str, str | None]:
    store = TokenStore()

    def make(user, roles):
        return tokens.issue(store, name=f"authz-{user}", user=user, roles=roles).secret

    return {
        "none": None,
        "bad": "hydra_000000000000_not-a-real-token",
        "viewer": make("vic", {NS: Role.VIEWER}),
        "operator": make("opal", {NS: Role.OPERATOR}),
        "admin": make("adam", {NS: Role.ADMIN}),
        "other": make("otto", {"team-b": Role.ADMIN}),
        "root": stack.admin_token,
    }


@dataclass
class World:
    """Helpers that make the objects a case acts on (as the stack's root admin)."""

    client: object
    secrets: dict

    def call(self, method: str, path: str, who: str = "root", json=None):
        secret = self.secrets[who]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return self.client.open(path, method=method, json=json, headers=headers)

    def job(self, **body) -> dict:
        base = {
            "name": unique("authz"),
            "user": "adam",
            "namespace": NS,
            "command": "true",
            "affinity": {"tags": [NOBODY_TAG]},
        }
        answer = self.call("POST", "/jobs/", json={**base, **body})
        assert answer.status_code == 201, answer.json
        return answer.json

    def cron(self) -> dict:
        return self.job(schedule="0 3 * * *")

    def fanned_out(self) -> dict:
        """A job that fans out (no worker has its tag: its fan-out reached nobody, and says so)."""
        return self.job(placement={"mode": "all"})

    def failed_run(self) -> str:
        created = self.job(affinity={"os": ["linux"]}, command="exit 3")
        return wait_run(created["run_id"]).id

    def token(self) -> str:
        return tokens.issue(TokenStore(), name="victim", user="vic", roles={NS: Role.VIEWER}).token.id


def job_state(job_id):
    return JobStore().get(job_id).to_doc()


def run_state(run_id):
    return RunStore().get(run_id).to_doc()


def namespace_jobs():
    root = Principal(user="t", roles={"*": Role.ADMIN})
    from hydra.control.access import Reader

    return [j.id for j in Reader(root).jobs_page(status=None, user=None, namespace=NS, limit=1000, cursor=None)[0]]


@dataclass
class Case:
    method: str
    path: str  # the OpenAPI path template
    #: Makes what the call acts on; returns (path params, body, a reader of the state that must not change).
    setup: Callable[[World], tuple[dict, object, Callable[[], object] | None]]
    #: Expected status by principal (none and bad are always 401).
    expect: dict[str, int]


def read_only(**codes):
    return {"viewer": 200, "operator": 200, "admin": 200, **codes}


def on_job(make="job", body=None):
    def setup(world):
        created = getattr(world, make)()
        return {"job_id": created["job_id"]}, body, lambda: job_state(created["job_id"])

    return setup


def on_run(kind):
    def setup(world):
        if kind == "failed":
            run_id = world.failed_run()
        else:
            run_id = world.job()["run_id"]  # pending: no worker has the tag
        return {"run_id": run_id}, None, lambda: run_state(run_id)

    return setup


def nothing(world):
    return {}, None, None


def new_job(world):
    body = {"name": unique("authz-new"), "namespace": NS, "command": "true", "affinity": {"tags": [NOBODY_TAG]}}
    return {}, body, namespace_jobs


def new_applied(world):
    job = {"name": unique("authz-file"), "namespace": NS, "command": "true", "affinity": {"tags": [NOBODY_TAG]}}
    return {}, {"jobs": [job]}, namespace_jobs


def new_python_task(world):
    body = {"kwargs": {"command": "true", "namespace": NS, "affinity": {"tags": [NOBODY_TAG]}}}
    return {}, body, namespace_jobs


def new_chord(world):
    step = {"task": "hydra.run_command", "args": [], "kwargs": {"command": "true", "namespace": NS}, "options": {}}
    return {}, {"group_id": unique("chord"), "parts": ["part-1"], "body": step}, namespace_jobs


def new_task(world):
    body = {"command": "true", "namespace": NS, "scheduled_at": "2099-01-01T00:00:00Z"}
    return {}, body, namespace_jobs


def on_token(world):
    token_id = world.token()
    return {"token_id": token_id}, None, lambda: TokenStore().get(token_id).to_doc()


def new_token(world):
    return {}, {"name": unique("t"), "roles": {NS: "viewer"}}, lambda: len(TokenStore().all())


def on_namespace(body=None):
    def setup(world):
        return {"namespace": NS}, body, lambda: NamespaceStore().limits(NS).to_doc()

    return setup


#: A worker in the workers view that serves team-a only (never online: nothing is placed on it).
TEAM_WORKER = "authz-team-a@nowhere"


@pytest.fixture(scope="module", autouse=True)
def team_worker(stack):
    """The worker the drain rows act on, forgotten (and undrained) after the module."""
    WorkerStore().put(WorkerView(id=TEAM_WORKER, os="linux", namespaces=[NS], status="offline"))
    yield
    undrain(TEAM_WORKER)
    WorkerStore().remove(TEAM_WORKER)


def undrain(worker_id):
    DrainStore().delete(worker_id)
    Registry().set_drained(worker_id, False)


def on_worker(drained: bool):
    def setup(world):
        if drained:
            DrainStore().put(TEAM_WORKER, by="root", reason=None)
        else:
            undrain(TEAM_WORKER)
        return {"worker_id": TEAM_WORKER}, None, drain_state

    return setup


def drain_state():
    found = DrainStore().find(TEAM_WORKER)
    return None if found is None else found.to_doc()


PATCH_BODY = {"priority": 77}
PUT_BODY = {
    "name": "replaced",
    "user": "adam",
    "namespace": NS,
    "command": "echo replaced",
    "affinity": {"tags": [NOBODY_TAG]},
}

CASES = [
    Case("GET", "/jobs/", nothing, read_only(other=200)),
    Case("POST", "/jobs/", new_job, {"viewer": 403, "operator": 201, "admin": 201, "other": 403}),
    Case("GET", "/jobs/{job_id}", on_job(), read_only(other=404)),
    # job files: applying creates (the operator role) or updates (admin) by namespace and name
    Case("POST", "/jobs/apply", new_applied, {"viewer": 403, "operator": 200, "admin": 200, "other": 403}),
    Case("PUT", "/jobs/{job_id}", on_job(body=PUT_BODY), {"viewer": 403, "operator": 403, "admin": 200, "other": 404}),
    Case(
        "PATCH", "/jobs/{job_id}", on_job(body=PATCH_BODY), {"viewer": 403, "operator": 403, "admin": 200, "other": 404}
    ),
    Case("DELETE", "/jobs/{job_id}", on_job(), {"viewer": 403, "operator": 403, "admin": 204, "other": 404}),
    Case("GET", "/jobs/{job_id}/runs", on_job(), read_only(other=404)),
    Case("POST", "/jobs/{job_id}/pause", on_job("cron"), {"viewer": 403, "operator": 200, "admin": 200, "other": 404}),
    Case("POST", "/jobs/{job_id}/resume", on_job("cron"), {"viewer": 403, "operator": 200, "admin": 200, "other": 404}),
    Case(
        "POST", "/jobs/{job_id}/trigger", on_job("cron"), {"viewer": 403, "operator": 201, "admin": 201, "other": 404}
    ),
    Case("GET", "/runs/{run_id}", on_run("pending"), read_only(other=404)),
    Case(
        "POST", "/runs/{run_id}/cancel", on_run("pending"), {"viewer": 403, "operator": 200, "admin": 200, "other": 404}
    ),
    Case(
        "POST", "/runs/{run_id}/retry", on_run("failed"), {"viewer": 403, "operator": 201, "admin": 201, "other": 404}
    ),
    Case("GET", "/runs/{run_id}/output", on_run("pending"), read_only(other=404)),
    Case("GET", "/runs/{run_id}/output.txt", on_run("pending"), read_only(other=404)),
    Case("GET", "/runs/{run_id}/output/events", on_run("pending"), read_only(other=404)),
    Case("GET", "/runs/{run_id}/flow", on_run("pending"), read_only(other=404)),
    Case("GET", "/jobs/{job_id}/dependencies", on_job(), read_only(other=404)),
    Case("GET", "/jobs/{job_id}/fanout", on_job("fanned_out"), read_only(other=404)),
    Case("POST", "/tasks/", new_python_task, {"viewer": 403, "operator": 201, "admin": 201, "other": 403}),
    Case("POST", "/tasks/chords", new_chord, {"viewer": 403, "operator": 201, "admin": 201, "other": 403}),
    Case("GET", "/dead-letter/", nothing, read_only(other=200)),
    Case("POST", "/schedule/", new_task, {"viewer": 403, "operator": 201, "admin": 201, "other": 403}),
    Case("GET", "/schedule/{task_id}", lambda w: ({"task_id": w.job()["job_id"]}, None, None), read_only(other=404)),
    Case("GET", "/workers/", nothing, read_only(other=200)),
    # A worker that serves team-a only: drained by team-a's operators (one that serves every
    # namespace needs an operator of '*'); team-b's admin does not even see it.
    Case(
        "POST",
        "/workers/{worker_id}/drain",
        on_worker(drained=False),
        {"viewer": 403, "operator": 200, "admin": 200, "other": 404},
    ),
    Case(
        "DELETE",
        "/workers/{worker_id}/drain",
        on_worker(drained=True),
        {"viewer": 403, "operator": 204, "admin": 204, "other": 404},
    ),
    Case("GET", "/metrics", nothing, {"viewer": 403, "operator": 403, "admin": 403, "other": 403}),
    Case("POST", "/tokens/", new_token, {"viewer": 403, "operator": 403, "admin": 201, "other": 403}),
    Case("GET", "/tokens/", nothing, read_only(other=200)),
    Case("DELETE", "/tokens/{token_id}", on_token, {"viewer": 403, "operator": 403, "admin": 200, "other": 403}),
    Case("GET", "/audit/", nothing, {"viewer": 403, "operator": 403, "admin": 200, "other": 200}),
    Case("GET", "/namespaces/{namespace}", on_namespace(), read_only(other=404)),
    Case(
        "PUT",
        "/namespaces/{namespace}",
        on_namespace({"max_queued": 40}),
        {"viewer": 403, "operator": 403, "admin": 200, "other": 404},
    ),
    Case(
        "DELETE",
        "/namespaces/{namespace}",
        on_namespace(),
        {"viewer": 403, "operator": 403, "admin": 204, "other": 404},
    ),
    # An admin exports the namespaces it administers (the other admin: its own, team-b).
    Case("GET", "/export/runs", nothing, {"viewer": 403, "operator": 403, "admin": 200, "other": 200}),
]
PUBLIC = {("GET", "/health/")}


def test_every_operation_has_a_row(client):
    described = {
        (method.upper(), path.rstrip("/"))
        for path, item in client.get("/openapi.json").json["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    rows = {(case.method, case.path.rstrip("/")) for case in CASES}
    assert described - {(m, p.rstrip("/")) for m, p in PUBLIC} == rows


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
def test_the_answer_is_the_documented_one_and_a_refusal_changes_nothing(client, secrets, case, who):
    world = World(client, secrets)
    params, body, state = case.setup(world)
    path = case.path.format(**params)
    before = state() if state else None
    answer = world.call(case.method, path, who, json=body)
    expected = 401 if who in ("none", "bad") else case.expect[who]
    assert answer.status_code == expected, (who, case.method, path, answer.json)
    if expected >= 400:
        assert set(answer.json) >= {"code", "status", "message"} and answer.json["code"] == expected
        if state:
            assert state() == before, "a refused call changed something"
    if expected == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_another_namespace_never_shows_in_a_listing(client, secrets):
    world = World(client, secrets)
    created = world.job()
    wait_ids = {j["id"] for j in world.call("GET", "/jobs/?limit=1000", "other").json}
    assert created["job_id"] not in wait_ids
    assert created["job_id"] in {j["id"] for j in world.call("GET", f"/jobs/?namespace={NS}&limit=1000", "viewer").json}
    events = world.call("GET", "/audit/?limit=1000", "other").json
    assert all(e["namespace"] == "team-b" for e in events)


def test_health_and_the_description_are_public(client):
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/openapi.json").status_code == 200
