"""Job files on the real stack (gunicorn API, Redis, FerretDB, the controller, real workers):
an answer about a job is a body POST takes back (its read-only fields ignored, write-only
values never taken as "<redacted>"); `hydra job export` and `hydra job apply` round-trip
every field a user can set, idempotently by namespace and name, never exporting a secret;
and concurrent applies of one new name make one job."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from click.testing import CliRunner

from hydra.cli import main
from hydra.client import Client, ClientError
from hydra.model import spec
from hydra.model.jobfile import SECRET, SETTABLE
from hydra.model.redaction import REDACTED
from hydra.store.job_names import JobNameStore
from hydra.store.jobs import JobStore
from tests.helpers import job_body, unique, wait_run


def space() -> str:
    return unique("files").lower()


def cron_body(namespace: str, **overrides) -> dict:
    return job_body(
        "echo nightly",
        namespace=namespace,
        schedule="0 3 * * *",
        timezone="Europe/Paris",
        priority=70,
        retries=2,
        backoff={"base": 1.5, "factor": 2.0, "cap": 30.0, "jitter": 0.1},
        affinity={"os": ["linux"], "tags": ["gpu"], "allowed_users": ["tester"]},
        overlap="forbid",
        **overrides,
    )


def jobs_named(namespace: str, name: str) -> list:
    return [job for job in JobStore().list(namespaces=[namespace], limit=1000)[0] if job.name == name]


@pytest.fixture(scope="module")
def cli(stack):
    stack.start_api()
    env = {"HYDRA_API_URL": stack.api_url, "HYDRA_TOKEN": stack.admin_token}
    runner = CliRunner()

    def run(*args, input=None, extra_env=None, code=0):
        result = runner.invoke(main, list(args), input=input, env={**env, **(extra_env or {})})
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    return run


def test_an_answer_is_a_body_post_takes_back_with_its_read_only_fields_ignored(api, stack):
    namespace = space()
    created = api.post("/jobs/", json=cron_body(namespace))
    assert created.status_code == 201, created.json
    answer = api.get(f"/jobs/{created.json['job_id']}").json
    assert spec.READ_ONLY_FIELDS and set(answer) >= spec.READ_ONLY_FIELDS  # the answer shows the job's state ...
    again = api.post("/jobs/", json=answer)  # ... and POST ignores exactly those fields
    assert again.status_code == 201, again.json
    copy = api.get(f"/jobs/{again.json['job_id']}").json
    assert {name: copy[name] for name in SETTABLE} == {name: answer[name] for name in SETTABLE}
    unknown = api.post("/jobs/", json={**answer, "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json["errors"]["json"]


def test_a_redacted_value_sent_back_is_refused_never_stored(api, stack):
    namespace = space()
    created = api.post("/jobs/", json=cron_body(namespace, env={"TOKEN": "s3cr3t"}))
    job_id = created.json["job_id"]
    answer = api.get(f"/jobs/{job_id}").json
    assert answer["env"] == {"TOKEN": REDACTED}
    refused = api.post("/jobs/", json=answer)
    assert refused.status_code == 422 and "TOKEN" in refused.json["errors"]["json"]["env"][0]
    replaced = api.put(f"/jobs/{job_id}", json=answer)
    assert replaced.status_code == 422 and "env" in replaced.json["errors"]["json"]
    assert [job.env for job in jobs_named(namespace, answer["name"])] == [{"TOKEN": "s3cr3t"}]
    # The answer is a job file: applied, "<redacted>" refers to the stored value.
    applied = api.post("/jobs/apply", json={"jobs": [answer]})
    assert applied.status_code == 200, applied.json
    assert [(r["action"], r["id"]) for r in applied.json] == [("unchanged", job_id)]
    assert JobStore().get(job_id).env == {"TOKEN": "s3cr3t"}


def test_export_and_apply_round_trip_without_exporting_a_secret(cli, stack):
    namespace = space()
    body = cron_body(namespace, env={"TOKEN": "s3cr3t", "MODE": "fast"})
    with Client(stack.api_url) as client:
        job_id = client.request("POST", "/jobs/", json=body, ok=(201,))["job_id"]
    exported = cli("job", "export", job_id, "--yaml").output
    assert "s3cr3t" not in exported and "fast" not in exported
    file = yaml.safe_load(exported)
    assert file["env"] == {"TOKEN": SECRET, "MODE": SECRET}
    assert {key: file[key] for key in ("schedule", "timezone", "priority", "backoff", "overlap")} == {
        key: body[key] for key in ("schedule", "timezone", "priority", "backoff", "overlap")
    }
    assert file["affinity"] == body["affinity"] and "status" not in file and "id" not in file

    unchanged = cli("job", "apply", "-f", "-", "--json", input=exported).output
    assert [(r["action"], r["id"]) for r in json.loads(unchanged)] == [("unchanged", job_id)]
    assert "unchanged" in cli("job", "apply", "-f", "-", input=exported).output

    file["priority"] = 20
    file["env"]["MODE"] = "slow"  # a value given in the file replaces the stored one
    changed = json.dumps(file)
    dry = json.loads(cli("job", "apply", "-f", "-", "--dry-run", "--json", input=changed).output)
    assert [(r["action"], r["changes"]) for r in dry] == [("updated", ["env", "priority"])]
    assert JobStore().get(job_id).priority == 70
    assert "would be updated" in cli("job", "apply", "-f", "-", "--dry-run", input=changed).output
    done = json.loads(cli("job", "apply", "-f", "-", "--json", input=changed).output)
    assert [(r["action"], r["id"], r["changes"]) for r in done] == [("updated", job_id, ["env", "priority"])]
    stored = JobStore().get(job_id)
    assert (stored.priority, stored.env) == (20, {"TOKEN": "s3cr3t", "MODE": "slow"})
    assert json.loads(cli("job", "apply", "-f", "-", "--json", input=changed).output)[0]["action"] == "unchanged"


def test_a_list_is_exported_by_namespace_and_applied_elsewhere_with_supplied_secrets(cli, stack, tmp_path):
    source, target = space(), space()
    with Client(stack.api_url) as client:
        for name in ("first", "second"):
            client.request("POST", "/jobs/", json=cron_body(source, name=name, env={"TOKEN": "t"}), ok=(201,))
    listed = json.loads(cli("job", "export", "--namespace", source).output)
    assert [item["name"] for item in listed] == ["first", "second"]
    moved = [{**item, "namespace": target} for item in listed]
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(moved))
    missing = cli("job", "apply", "-f", str(path), code=3)
    assert "supply it" in missing.stderr and "TOKEN" in missing.stderr
    assert jobs_named(target, "first") == []  # the whole file was refused
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump({"first": {"env": {"TOKEN": "from-file"}}}))
    created = json.loads(
        cli(
            "job", "apply", "-f", str(path), "--secrets", str(secrets), "--env-from-shell", "--json",
            extra_env={"TOKEN": "from-shell"},
        ).output
    )  # fmt: skip
    assert [(r["name"], r["action"]) for r in created] == [("first", "created"), ("second", "created")]
    assert [jobs_named(target, name)[0].env for name in ("first", "second")] == [
        {"TOKEN": "from-file"},
        {"TOKEN": "from-shell"},
    ]


def test_an_applied_job_without_a_schedule_runs_with_its_supplied_secret(cli, stack):
    file = {"name": unique("once"), "namespace": space(), "command": 'echo "${#TOKEN}"', "env": {"TOKEN": SECRET}}
    result = json.loads(
        cli(
            "job", "apply", "-f", "-", "--env-from-shell", "--json", input=json.dumps(file), extra_env={"TOKEN": "abcd"}
        ).output
    )
    assert result[0]["action"] == "created" and result[0]["run_id"]
    assert wait_run(result[0]["run_id"]).stdout == "4\n"


def test_a_file_must_name_its_jobs(cli, stack):
    refused = cli("job", "apply", "-f", "-", input='{"command": "true"}', code=3)
    assert "names its jobs" in refused.stderr
    assert "neither JSON nor YAML" in cli("job", "apply", "-f", "-", input="{nope", code=2).output


def test_concurrent_applies_of_one_new_name_make_one_job(stack):
    stack.start_api()
    namespace, name = space(), unique("raced")
    file = [cron_body(namespace, name=name)]

    def apply_once(_):
        with Client(stack.api_url) as client:
            try:
                return client.apply_jobs(file)[0]
            except ClientError as exc:  # another apply was still creating it: apply again
                assert exc.status_code == 409, exc
                return {"action": "conflict"}

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(apply_once, range(8)))
    actions = [result["action"] for result in results]
    assert actions.count("created") == 1, actions
    assert set(actions) <= {"created", "unchanged", "conflict"}, actions
    made = jobs_named(namespace, name)
    assert len(made) == 1
    assert {result["id"] for result in results if result["action"] != "conflict"} == {made[0].id}


def test_a_name_claim_is_won_by_one_of_many_on_ferretdb(stack):
    namespace, name = space(), unique("claimed")

    def claim(index):
        return JobNameStore().claim(namespace, name, 0, f"job-{index}")

    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(claim, range(8)))
    assert sum(won for _, won in claims) == 1
    assert len({found.job_id for found, _ in claims}) == 1


def test_the_console_exports_a_job_file_and_clones_a_job(stack, api):
    from hydra.auth import tokens
    from hydra.model.access import Role
    from hydra.store.tokens import TokenStore
    from tests.integration.test_console import browser, csrf

    namespace = space()
    job_id = api.post("/jobs/", json=cron_body(namespace, env={"TOKEN": "s3cr3t"})).json["job_id"]
    admin = browser(stack.admin_token)
    page = admin.get(f"/ui/jobs/{job_id}")
    assert f"/ui/jobs/{job_id}/export".encode() in page.data and f"/ui/jobs/{job_id}/clone".encode() in page.data
    download = admin.get(f"/ui/jobs/{job_id}/export")
    assert download.status_code == 200 and download.headers["Content-Disposition"].startswith("attachment;")
    file = json.loads(download.data)
    assert file["env"] == {"TOKEN": SECRET} and b"s3cr3t" not in download.data
    as_yaml = admin.get(f"/ui/jobs/{job_id}/export?format=yaml")
    assert yaml.safe_load(as_yaml.data) == file and as_yaml.headers["Content-Disposition"].endswith('.yaml"')

    form = admin.get(f"/ui/jobs/{job_id}/clone")
    assert form.status_code == 200 and b"copy" in form.data and b"s3cr3t" not in form.data
    copy = {**file, "name": unique("clone")}
    made = admin.post(f"/ui/jobs/{job_id}/clone", data={"csrf_token": csrf(form), "body": json.dumps(copy)})
    assert made.status_code == 302, made.data
    (clone,) = jobs_named(namespace, copy["name"])
    assert clone.env == {"TOKEN": "s3cr3t"}  # copied for one who may change the source
    source = JobStore().get(job_id).spec()
    assert {k: v for k, v in clone.spec().items() if k != "name"} == {k: v for k, v in source.items() if k != "name"}

    # One who may submit but not change the source gives the values itself.
    secret = tokens.issue(TokenStore(), name=unique("op"), user="tester", roles={namespace: Role.OPERATOR}).secret
    operator = browser(secret)
    form = operator.get(f"/ui/jobs/{job_id}/clone")
    refused = operator.post(
        f"/ui/jobs/{job_id}/clone", data={"csrf_token": csrf(form), "body": json.dumps({**copy, "name": "op-copy"})}
    )
    assert refused.status_code == 422 and b"supply it" in refused.data and jobs_named(namespace, "op-copy") == []
    given = {**copy, "name": "op-copy", "env": {"TOKEN": "mine"}}
    assert (
        operator.post(
            f"/ui/jobs/{job_id}/clone", data={"csrf_token": csrf(form), "body": json.dumps(given)}
        ).status_code
        == 302
    )
    assert [job.env for job in jobs_named(namespace, "op-copy")] == [{"TOKEN": "mine"}]
