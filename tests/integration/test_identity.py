"""Identity on the real stack: tokens through the CLI, the job's user is the caller, secrets stay
secret (answers, Flower), /metrics needs its scrape token, an OIDC issuer's JWTs (a real
gunicorn API and a JWKS server), namespaces for workers, quotas and fair sharing."""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest
import requests
from click.testing import CliRunner

from hydra.auth import tokens
from hydra.cli import main
from hydra.model.access import Role
from hydra.store.runs import RunStore
from hydra.store.tokens import TokenStore
from hydrastack import WorkerSpec
from tests.helpers import job_body, submit, unique, wait_run, wait_until
from tests.issuer import Issuer


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def cli(stack, *args: str, token: str | None = None):
    """``hydra <command...> --api-url ... [args]``: the options go after the (sub)command."""
    path = list(args[:2]) if args[0] == "token" else list(args[:1])
    base = [*path, "--api-url", stack.api_url] + (["--token", token] if token else [])
    result = CliRunner().invoke(main, [*base, *args[len(path) :]])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_a_token_made_with_the_cli_works_once_shown_and_stops_when_revoked(api, stack):
    stack.start_api()
    made = cli(stack, "token", "create", "--name", "ci", "--user", "ci-bot", "--role", "ci=operator", "--json")
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)
    secret = token["token"]
    listed = json.loads(cli(stack, "token", "list", "--json").stdout)
    assert token["id"] in {t["id"] for t in listed} and secret not in json.dumps(listed)
    submitted = requests.post(
        f"{stack.api_url}/jobs/",
        json=job_body("echo ci", user=None, namespace="ci"),
        headers=bearer(secret),
        timeout=30,
    )
    assert submitted.status_code == 201, submitted.json()
    run = wait_run(submitted.json()["run_id"])
    assert (run.user, run.namespace, run.stdout) == ("ci-bot", "ci", "ci\n")
    # the bot may not act as another user, nor submit elsewhere
    refused = requests.post(
        f"{stack.api_url}/jobs/", json=job_body("true", user="rich", namespace="ci"), headers=bearer(secret), timeout=30
    )
    assert refused.status_code == 403 and "act-as" in refused.json()["message"]
    assert cli(stack, "token", "revoke", token["id"]).exit_code == 0
    wait_until(
        lambda: requests.get(f"{stack.api_url}/jobs/", headers=bearer(secret), timeout=30).status_code == 401,
        5,
        message="the revoked token to be refused",
    )
    trail = json.loads(cli(stack, "audit", "--target", token["id"], "--json").stdout)
    assert [e["action"] for e in trail] == ["token.revoke", "token.create"]


def test_env_values_never_come_back_out(api, stack):
    created = submit(api, 'echo "${SECRET_THING:0:3}"', env={"SECRET_THING": "s3cr3t-value"})
    run = wait_run(created["run_id"])
    assert run.stdout == "s3c\n"  # the command got it
    job = api.get(f"/jobs/{created['job_id']}").json
    assert job["env"] == {"SECRET_THING": "<redacted>"}
    listing = api.get("/jobs/?limit=1000").data.decode()
    runs = api.get(f"/jobs/{created['job_id']}/runs").data.decode()
    audit = api.get("/audit/?limit=1000").data.decode()
    assert "s3cr3t-value" not in listing + audit + runs


@pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode != 0, reason="no curl")
def test_flower_never_sees_an_env_value(api, stack):
    stack.start_flower()
    run_id = submit(api, "true", env={"FLOWER_SECRET": "fl0wer-s3cret"}, name="flower-secret")["run_id"]
    wait_run(run_id)

    def task():
        out = subprocess.run(
            ["curl", "-s", "-u", stack.flower_auth, f"{stack.flower_url}/api/task/info/{run_id}"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        info = json.loads(out) if out.startswith("{") else {}
        return info if info.get("state") == "SUCCESS" and info.get("kwargs") else None

    info = wait_until(task, 30, interval=0.5, message="flower saw the task")
    assert "flower-secret" in info["kwargs"] and "fl0wer-s3cret" not in json.dumps(info)


def test_metrics_take_the_scrape_token_or_a_role_everywhere(stack):
    stack.start_api()
    url = f"{stack.api_url}/metrics"
    assert requests.get(url, timeout=30).status_code == 401
    assert requests.get(url, headers=bearer(stack.metrics_token), timeout=30).status_code == 200
    assert requests.get(url, headers=bearer(stack.admin_token), timeout=30).status_code == 200
    viewer = tokens.issue(TokenStore(), name="m", user="m", roles={"default": Role.VIEWER}).secret
    assert requests.get(url, headers=bearer(viewer), timeout=30).status_code == 403
    # the scrape token opens nothing else
    assert requests.get(f"{stack.api_url}/jobs/", headers=bearer(stack.metrics_token), timeout=30).status_code == 403


@pytest.fixture
def oidc_api(stack, tmp_path):
    """An API under gunicorn that also accepts the JWTs of a test issuer (its JWKS served here)."""
    from hydrastack import pick_free_ports

    idp = Issuer("https://idp.test", subject="s-1", kid="test")
    (port,) = pick_free_ports(1)
    env = {"HYDRA_OIDC_ISSUER": idp.name, "HYDRA_OIDC_AUDIENCE": "hydra", "HYDRA_OIDC_JWKS_URL": idp.jwks_url}
    argv = [arg.replace(f"127.0.0.1:{stack.api_port}", f"127.0.0.1:{port}") for arg in stack.api_command()]
    stack.spawn("api-oidc", argv, env=env, port=port)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: stack._http_status(f"{url}/health") in (200, 503), 60, message="the OIDC API answers")
    yield url, idp.sign
    stack.stop("api-oidc", timeout=10)
    idp.close()


def test_an_oidc_token_authenticates_with_the_roles_its_claims_give(oidc_api):
    url, sign = oidc_api
    operator = sign(preferred_username="oidc-ana", hydra_roles=["oidc-ns=operator"])
    created = requests.post(
        f"{url}/jobs/",
        json=job_body("echo via oidc", user=None, namespace="oidc-ns"),
        headers=bearer(operator),
        timeout=30,
    )
    assert created.status_code == 201, created.json()
    run = wait_run(created.json()["run_id"])
    assert (run.user, run.stdout) == ("oidc-ana", "via oidc\n")
    nobody = sign(preferred_username="nobody")  # verified, but no role anywhere
    assert requests.get(f"{url}/jobs/{created.json()['job_id']}", headers=bearer(nobody), timeout=30).status_code == 404
    expired = sign(preferred_username="oidc-ana", hydra_roles=["oidc-ns=operator"], exp=time.time() - 60)
    assert requests.get(f"{url}/jobs/", headers=bearer(expired), timeout=30).status_code == 401


def test_a_worker_limited_to_namespaces_gets_only_their_jobs(api, worker_factory):
    tag = unique("ns").lower()
    spec = worker_factory(
        WorkerSpec(unique("nsw"), f"os.linux,tag.{tag}", concurrency=1, extra_args=["--namespaces", "team-x"])
    )
    affinity = {"os": ["linux"], "tags": [tag]}
    elsewhere = submit(api, "true", affinity=affinity)
    assert elsewhere["status"] == "pending" and "does not serve namespace 'default'" in elsewhere["pending_reason"]
    ours = submit(api, "echo x", affinity=affinity, namespace="team-x")
    assert wait_run(ours["run_id"]).worker_id == spec.node
    worker = next(w for w in api.get("/workers/").json if w["id"] == spec.node)
    assert worker["namespaces"] == ["team-x"]
    assert api.post(f"/runs/{elsewhere['run_id']}/cancel").status_code == 200


def test_a_namespace_over_its_quota_waits_and_is_placed_as_capacity_frees(api, worker_factory):
    tag = unique("quota").lower()
    worker_factory(WorkerSpec(unique("qw"), f"os.linux,tag.{tag}", concurrency=3))
    namespace = unique("q").lower()
    assert api.put(f"/namespaces/{namespace}", json={"max_running": 1}).status_code == 200
    affinity = {"os": ["linux"], "tags": [tag]}
    created = [submit(api, "sleep 0.5", affinity=affinity, namespace=namespace) for _ in range(3)]
    assert [c["status"] for c in created] == ["queued", "pending", "pending"]
    assert "max_running 1" in created[1]["pending_reason"]
    runs = [wait_run(c["run_id"], timeout=60) for c in created]
    assert all(r.status == "succeeded" for r in runs)
    spans = sorted((r.started_at, r.finished_at) for r in runs)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))  # one at a time


def test_a_flood_in_one_namespace_does_not_starve_another(api, worker_factory):
    tag = unique("fair").lower()
    worker_factory(WorkerSpec(unique("fw"), f"os.linux,tag.{tag}", concurrency=1))
    flood, other = unique("flood").lower(), unique("calm").lower()
    assert api.put(f"/namespaces/{flood}", json={"max_queued": 2}).status_code == 200
    affinity = {"os": ["linux"], "tags": [tag]}
    flooded = [submit(api, "sleep 0.2", affinity=affinity, namespace=flood)["run_id"] for _ in range(20)]
    calm = submit(api, "true", affinity=affinity, namespace=other)
    assert calm["status"] == "queued"  # straight onto the worker, behind at most the flood's quota
    calm_run = wait_run(calm["run_id"], timeout=60)
    flood_runs = [wait_run(run_id, timeout=120) for run_id in flooded]
    started_after = sum(r.started_at > calm_run.started_at for r in flood_runs)
    assert started_after >= 15, f"only {started_after} flood runs started after the other namespace's"
    assert RunStore().get(flooded[-1]).status == "succeeded"


def test_the_stores_need_credentials_that_no_job_sees(api, stack):
    import pymongo
    import redis

    anonymous = redis.Redis(host="127.0.0.1", port=stack.redis_port, socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get("anything")
    hydra = redis.Redis.from_url(stack.broker_url, socket_timeout=5)
    assert hydra.info("server")["run_id"]  # what the controller needs
    for dangerous in (
        hydra.flushall,
        lambda: hydra.config_get("*"),
        lambda: hydra.execute_command("KEYS", "*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            dangerous()
    with pytest.raises(pymongo.errors.OperationFailure) as refused:
        pymongo.MongoClient(
            f"mongodb://127.0.0.1:{stack.mongo_port}/", serverSelectionTimeoutMS=5000
        ).hydra.x.find_one()
    assert refused.value.code == 13  # requires authentication
    for name in ("redis-hydra.password", "redis-admin.password", "mongo-hydra.password", "redis.acl", "admin.token"):
        assert (stack.root / name).stat().st_mode & 0o777 == 0o600, name
    env = wait_run(submit(api, "env")["run_id"]).stdout
    for secret in (stack.redis_password, stack.redis_admin_password, stack.mongo_password, stack.admin_token):
        assert secret not in env
