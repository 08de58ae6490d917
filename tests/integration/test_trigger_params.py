"""Trigger parameters on the real stack (Redis, FerretDB, the controller, real workers): the
REST API, gRPC, the client and the CLI give values; the command gets them as variables and
arguments; the run, the audit trail and every answer keep secret ones write-only; cron jobs
need defaults; and a worker runs only the values that were signed and recorded."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format

from hydra import names
from hydra.cli import main
from hydra.client import Client, InvalidRequest
from hydra.dispatch import signing
from hydra.dispatch.envelope import seal
from hydra.model.message import execution_digest, load_message
from hydra.model.records import Chain
from hydra.model.redaction import REDACTED
from hydra.store.runs import RunStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from tests.conftest import CPU
from tests.helpers import job_body, unique, wait_run, wait_ticks
from tests.integration.test_grpc import violations

#: Prints what it got: the variables, the argument, and the secret's length only.
COMMAND = 'echo "target=${HYDRA_PARAM_TARGET:-unset} level=$HYDRA_PARAM_LEVEL token=${#HYDRA_PARAM_TOKEN} arg=$1"'
PARAMS = [
    {"name": "TARGET", "required": True, "allowed": ["staging", "prod"], "description": "Where to deploy"},
    {"name": "LEVEL", "default": "info", "pattern": "info|debug"},
    {"name": "TOKEN", "secret": True},
    {"name": "WHAT", "default": "all", "as": "arg"},
]


def declared_job(api, **overrides) -> dict:
    response = api.post("/jobs/", json=job_body(COMMAND, params=PARAMS, **overrides))
    assert response.status_code == 201, response.json
    return response.json


def test_a_trigger_gives_values_that_reach_the_command_and_are_recorded(api, stack):
    created = declared_job(api)
    assert (created["status"], created["run_id"]) == ("stored", None)  # TARGET has no default: waits for a trigger
    job_id = created["job_id"]
    assert [p["name"] for p in api.get(f"/jobs/{job_id}").json["params"]] == ["TARGET", "LEVEL", "TOKEN", "WHAT"]

    answer = api.post(
        f"/jobs/{job_id}/trigger",
        json={"params": {"TARGET": "prod", "TOKEN": "s3cret-value", "WHAT": "web; touch /tmp/pwned"}},
    )
    assert answer.status_code == 201, answer.json
    run = wait_run(answer.json["run_id"])
    assert run.status == "succeeded", run.error
    assert run.stdout == "target=prod level=info token=12 arg=web; touch /tmp/pwned\n"  # $1 is a value, not code
    shown = api.get(f"/runs/{run.id}").json
    assert shown["params"] == {"TARGET": "prod", "LEVEL": "info", "TOKEN": REDACTED, "WHAT": "web; touch /tmp/pwned"}
    listed = api.get(f"/jobs/{job_id}/runs").json
    assert listed[0]["params"]["TOKEN"] == REDACTED and "s3cret-value" not in str(listed)
    trail = api.get("/audit/", query_string={"target": job_id}).json
    triggered = next(e for e in trail if e["action"] == "job.trigger")
    assert triggered["details"]["params"] == shown["params"] and "s3cret-value" not in str(trail)


def test_bad_values_and_unknown_fields_are_refused_naming_them(api, stack):
    job_id = declared_job(api)["job_id"]
    unknown = api.post(f"/jobs/{job_id}/trigger", json={"env": {"TARGET": "prod"}})
    assert unknown.status_code == 422 and "env" in unknown.json["errors"]["json"]
    missing = api.post(f"/jobs/{job_id}/trigger")
    assert missing.status_code == 422
    assert missing.json["errors"]["json"]["params"] == {"TARGET": ["required: this parameter has no default"]}
    bad = api.post(f"/jobs/{job_id}/trigger", json={"params": {"TARGET": "dev", "LEVEL": "trace", "COLOUR": "red"}})
    assert bad.status_code == 422 and set(bad.json["errors"]["json"]["params"]) == {"TARGET", "LEVEL", "COLOUR"}
    not_text = api.post(f"/jobs/{job_id}/trigger", json={"params": {"TARGET": ["prod"]}})
    assert not_text.status_code == 422 and not_text.json["errors"]["json"]["params"]["TARGET"] == ["must be a string"]
    assert api.get(f"/jobs/{job_id}/runs").json == []  # nothing half-made


def test_a_job_without_parameters_still_triggers_without_a_body(api, stack):
    created = api.post("/jobs/", json=job_body("echo plain")).json
    wait_run(created["run_id"])
    again = api.post(f"/jobs/{created['job_id']}/trigger")
    assert again.status_code == 201 and wait_run(again.json["run_id"]).stdout == "plain\n"
    refused = api.post(f"/jobs/{created['job_id']}/trigger", json={"params": {"X": "1"}})
    assert refused.json["errors"]["json"]["params"] == {"X": ["not a parameter of this job (it declares none)"]}


def test_a_cron_job_runs_with_defaults_and_may_not_require_a_value_without_one(api, stack):
    refused = api.post("/jobs/", json=job_body(COMMAND, params=PARAMS, schedule="*/5 * * * *"))
    assert (
        refused.status_code == 422
        and "TARGET is required without a default" in refused.json["errors"]["json"]["params"][0]
    )
    defaults = [{**PARAMS[0], "default": "staging"}, *PARAMS[1:]]
    created = api.post("/jobs/", json=job_body(COMMAND, params=defaults, schedule="*/5 * * * *")).json
    assert created["status"] == "scheduled"
    # A trigger of the cron job without values: its defaults, as a tick uses them.
    run = wait_run(api.post(f"/jobs/{created['job_id']}/trigger").json["run_id"])
    assert run.stdout == "target=staging level=info token=0 arg=all\n"


def test_the_client_and_the_cli_give_values(stack, api):
    stack.start_api()
    job_id = declared_job(api)["job_id"]
    with Client(stack.api_url) as client:
        assert [p["name"] for p in client.job(job_id).params] == ["TARGET", "LEVEL", "TOKEN", "WHAT"]
        with pytest.raises(InvalidRequest) as info:
            client.trigger_job(job_id, params={"TARGET": "nowhere"})
        assert "TARGET" in info.value.errors["json"]["params"]
        run = wait_run(client.trigger_job(job_id, params={"TARGET": "staging", "LEVEL": "debug"}).run_id)
        assert run.stdout == "target=staging level=debug token=0 arg=all\n"
        assert client.run(run.id).params == {"TARGET": "staging", "LEVEL": "debug", "WHAT": "all"}

    env = {"HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    runner = CliRunner()
    out = runner.invoke(
        main, ["job", "trigger", job_id, "-p", "TARGET=prod", "--ask", "TOKEN", "--json"], input="zqx\n", env=env
    )
    assert out.exit_code == 0, out.output
    run_id = json.loads(out.stdout)["run_id"]
    assert wait_run(run_id).stdout == "target=prod level=info token=3 arg=all\n"
    shown = runner.invoke(main, ["run", "show", run_id], env=env)
    # The secret is not hex: a job or run id (random hex) can never contain it by chance.
    assert "TOKEN=<redacted>" in shown.output and "zqx" not in shown.output
    bad = runner.invoke(main, ["job", "trigger", job_id, "-p", "TARGET=moon"], env=env)
    assert bad.exit_code == 3 and "params: TARGET: must be one of: staging, prod" in bad.output
    declared = runner.invoke(
        main,
        ["submit", "--name", unique("cli"), "--os", "linux", "--param", "WHO!", "--param", "GREETING=hello",
         "--", 'echo "$HYDRA_PARAM_GREETING $HYDRA_PARAM_WHO"'],
        env=env,
    )  # fmt: skip
    assert declared.exit_code == 0 and "when triggered" in declared.output, declared.output
    new_job = declared.output.split()[1]
    assert "WHO (required), GREETING (default 'hello')" in runner.invoke(main, ["job", "show", new_job], env=env).output


def test_trigger_over_grpc(stack, api):
    stack.start_grpc()
    job_id = declared_job(api)["job_id"]
    metadata = (("authorization", f"Bearer {stack.admin_token}"),)
    with grpc.insecure_channel(stack.grpc_address) as channel:
        hydra = hydra_pb2_grpc.HydraStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            hydra.TriggerJob(hydra_pb2.TriggerJobRequest(job_id=job_id, params={"TARGET": "x"}), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "params.TARGET" in violations(caught.value)
        answer = hydra.TriggerJob(
            hydra_pb2.TriggerJobRequest(job_id=job_id, params={"TARGET": "prod", "TOKEN": "grpc-secret"}),
            metadata=metadata,
            timeout=30,
        )
        assert wait_run(answer.run_id).stdout == "target=prod level=info token=11 arg=all\n"
        run = hydra.GetRun(hydra_pb2.GetRunRequest(run_id=answer.run_id), metadata=metadata)
        assert dict(run.params) == {"TARGET": "prod", "LEVEL": "info", "TOKEN": REDACTED, "WHAT": "all"}
        job = hydra.GetJob(hydra_pb2.GetJobRequest(job_id=job_id), metadata=metadata)
        assert [p.name for p in job.params] == ["TARGET", "LEVEL", "TOKEN", "WHAT"] and getattr(
            job.params[3], "as"
        ) == "arg"
        # Declared over gRPC too, with the REST rules and field names.
        bad = hydra_pb2.SubmitJobRequest(
            job=json_format.ParseDict(
                {"name": unique("g"), "command": "true", "params": [{"name": "T", "secret": True, "default": "x"}]},
                hydra_pb2.JobSpec(),
            )
        )
        with pytest.raises(grpc.RpcError) as caught:
            hydra.SubmitJob(bad, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any(field.startswith("job.params") for field in violations(caught.value))


def _signed(run_id: str, kwargs: dict) -> None:
    from hydra.celery.app import app

    app.publish(
        names.TASK_RUN_COMMAND,
        kwargs,
        task_id=run_id,
        queue=names.worker_queue(CPU.node),
        headers={**Chain().headers(), signing.HEADER: seal(run_id, kwargs, Chain(), {}).signature},
    )


def test_a_worker_runs_only_the_values_that_were_signed_and_recorded(api, stack):
    tag = unique("nobody").lower()
    job_id = declared_job(api, affinity={"os": ["linux"], "tags": [tag]})["job_id"]
    placed = api.post(f"/jobs/{job_id}/trigger", json={"params": {"TARGET": "staging"}}).json
    assert placed["status"] == "pending"  # no worker has the tag
    recorded = RunStore().get(placed["run_id"])
    base = {
        "name": recorded.job_name,
        "user": "tester",
        "command": COMMAND,
        "shell": "bash",
        "timeout": 30,
        "job_id": job_id,
        "attempt": 1,
        "params": api.get(f"/jobs/{job_id}").json["params"],
    }
    # The message Hydra published had these values: the same message with others differs only in them.
    assert execution_digest(load_message({**base, "param_values": {"TARGET": "staging"}})) == recorded.spec_digest
    # Signed with the real key, valid values, but not the ones recorded: refused.
    _signed(placed["run_id"], {**base, "param_values": {"TARGET": "prod"}})
    run = wait_run(placed["run_id"], timeout=30)
    assert run.status == "failed" and "disagrees with its run record" in run.error and run.started_at is None
    # Signed, for a run nobody recorded, with a value the declaration does not allow: the
    # worker checks the values itself.
    forged_id = str(uuid.uuid4())
    _signed(forged_id, {**base, "param_values": {"TARGET": "moon"}})
    forged = wait_run(forged_id, timeout=30)
    assert forged.status == "failed" and "invalid message" in forged.error and "param_values" in forged.error
    assert forged.started_at is None
    wait_ticks(2)
