"""Alerting per job on the real stack: /metrics gives a cron job's last success and failure and
its due tick, a monitored job's runs by status, pending runs and online workers by tag - from
MongoDB and Redis, so the API in this process and the stack's gunicorn API (another process,
another replica) serve the same numbers; and every metric an alert rule names is served."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import grpc
import yaml
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from hydra.store.jobs import JobStore
from hydra.v1 import hydra_pb2, hydra_pb2_grpc
from hydrastack import REPO
from tests.helpers import job_body, submit, unique, wait_run, wait_until
from tests.integration.test_cli_operations import answer, hydra
from tests.integration.test_console import browser, csrf
from tests.integration.test_metrics import scrape, value

#: 1 January at midnight: the controller's scheduler does not fire it during a test run.
YEARLY = "0 0 1 1 *"


def scrape_here(api) -> dict:
    """/metrics from the API app in this process (the other replica)."""
    response = api.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def job_labels(job_id: str, name: str, **more) -> dict:
    return {"job_id": job_id, "job_name": name, "namespace": "default", **more}


def test_a_monitored_cron_job_shows_its_failure_then_its_success_on_every_replica(api, stack):
    stack.start_api()
    name = unique("nightly")
    job_id = submit(api, "exit 3", name=name, schedule=YEARLY, monitor=True)["job_id"]
    assert api.get(f"/jobs/{job_id}").json["monitor"] is True
    labels = job_labels(job_id, name)

    samples = scrape(stack.api_url)
    assert value(samples, "hydra_job_last_success_timestamp_seconds", **labels) == 0
    assert value(samples, "hydra_job_last_failure_timestamp_seconds", **labels) == 0
    next_new_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC).timestamp()
    assert value(samples, "hydra_job_next_fire_timestamp_seconds", **labels) == next_new_year

    failed = api.post(f"/jobs/{job_id}/trigger", json={}).json["run_id"]
    assert wait_run(failed).status == "failed"
    samples = scrape(stack.api_url)
    failed_at = value(samples, "hydra_job_last_failure_timestamp_seconds", **labels)
    assert failed_at > 0 and value(samples, "hydra_job_last_success_timestamp_seconds", **labels) == 0
    assert value(samples, "hydra_job_runs_finished_total", **labels, status="failed") == 1
    assert JobStore().get(job_id).last_failure_at.timestamp() == failed_at  # kept in MongoDB

    assert api.patch(f"/jobs/{job_id}", json={"command": "true"}).status_code == 200
    assert api.get(f"/jobs/{job_id}").json["monitor"] is True  # a PATCH keeps it
    succeeded = api.post(f"/jobs/{job_id}/trigger", json={}).json["run_id"]
    assert wait_run(succeeded).status == "succeeded"
    there, here = scrape(stack.api_url), scrape_here(api)
    for samples in (there, here):
        assert value(samples, "hydra_job_last_success_timestamp_seconds", **labels) > failed_at
        assert value(samples, "hydra_job_last_failure_timestamp_seconds", **labels) == failed_at
        assert value(samples, "hydra_job_runs_finished_total", **labels, status="succeeded") == 1
        assert value(samples, "hydra_job_runs_finished_total", **labels, status="failed") == 1
    mine = {key: v for key, v in there.items() if ("job_id", job_id) in key[1]}
    assert mine == {key: v for key, v in here.items() if ("job_id", job_id) in key[1]}

    assert api.delete(f"/jobs/{job_id}").status_code in (200, 204)
    assert not any(("job_id", job_id) in key[1] for key in scrape(stack.api_url))


def test_a_job_not_monitored_has_no_counters_and_a_one_off_job_no_series(api, stack):
    stack.start_api()
    cron = submit(api, "true", name=unique("plain-cron"), schedule=YEARLY)["job_id"]
    once = submit(api, "true", name=unique("once"))
    run = api.post(f"/jobs/{cron}/trigger", json={}).json["run_id"]
    assert wait_run(run).status == "succeeded" and wait_run(once["run_id"]).status == "succeeded"
    samples = scrape(stack.api_url)
    mine = {name for name, labels in samples if ("job_id", cron) in labels}
    assert mine == {
        "hydra_job_last_success_timestamp_seconds",
        "hydra_job_last_failure_timestamp_seconds",
        "hydra_job_next_fire_timestamp_seconds",
    }
    assert not any(("job_id", once["job_id"]) in labels for _, labels in samples)
    assert api.delete(f"/jobs/{cron}").status_code in (200, 204)


def test_a_cron_job_whose_tick_was_missed_shows_a_due_tick_in_the_past(api, stack):
    """Its schedule counts from 2020 and no scheduler has handled a tick: the tick it is due to
    handle is 1 January 2021. (Should the controller's scheduler reload and fire it meanwhile,
    the metric must follow the job's record: the due tick is always the stored one's.)"""
    stack.start_api()
    name = unique("missed")
    job_id = submit(api, "true", name=name, schedule=YEARLY)["job_id"]
    jobs = JobStore()
    jobs.set_schedule_since(job_id, datetime(2020, 6, 1, tzinfo=UTC))
    # The scheduler may fire it while the scrape runs: the metric is the due tick of the record
    # as it was before the scrape or as it is after it.
    before = jobs.get(job_id).due_tick()
    due = value(scrape(stack.api_url), "hydra_job_next_fire_timestamp_seconds", **job_labels(job_id, name))
    after = jobs.get(job_id).due_tick()
    assert due in {before.timestamp(), after.timestamp()}
    assert before == datetime(2021, 1, 1, tzinfo=UTC) or jobs.get(job_id).last_fire_at is not None
    assert api.delete(f"/jobs/{job_id}").status_code in (200, 204)


def test_runs_waiting_for_a_tag_no_worker_has_show_by_tag(api, stack):
    stack.start_api()
    tag = unique("none").lower()
    waiting = submit(api, "true", affinity={"os": ["linux"], "tags": [tag]})
    assert waiting["status"] == "pending"
    samples = scrape(stack.api_url)
    assert value(samples, "hydra_pending_runs_by_tag", tag=tag) == 1
    assert ("hydra_workers_online_by_tag", (("tag", tag),)) in samples
    assert value(samples, "hydra_workers_online_by_tag", tag=tag) == 0
    assert value(samples, "hydra_workers_online_by_tag", tag="gpu") >= 1  # the standing gpu worker
    assert api.post(f"/runs/{waiting['run_id']}/cancel").status_code == 200
    wait_until(
        lambda: value(scrape(stack.api_url), "hydra_pending_runs_by_tag", tag=tag) == 0,
        20,
        interval=0.3,
        message="the cancelled run to stop waiting",
    )


def test_every_metric_the_alert_rules_name_is_served(api, stack):
    """The rules are only worth something if their metrics exist: each hydra_* name in an alert
    expression is among the names /metrics serves (with a pending tagged run and a monitored
    job that ended, so that every family has a sample)."""
    stack.start_api()
    tag = unique("none").lower()
    waiting = submit(api, "true", affinity={"os": ["linux"], "tags": [tag]})
    job = submit(api, "exit 1", name=unique("watched"), monitor=True, schedule=YEARLY)["job_id"]
    assert wait_run(api.post(f"/jobs/{job}/trigger", json={}).json["run_id"]).status == "failed"
    served = {name for name, _labels in scrape(stack.api_url)}
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "hydra-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bhydra_[a-z_]+", expr)}
    assert used and used <= served, used - served
    assert api.post(f"/runs/{waiting['run_id']}/cancel").status_code == 200
    assert api.delete(f"/jobs/{job}").status_code in (200, 204)


def test_monitor_goes_through_grpc_the_cli_and_the_console_and_a_bad_value_is_a_422(api, stack):
    bad = api.post("/jobs/", json=job_body("true", monitor="yes"))
    assert bad.status_code == 422 and "monitor" in bad.json["errors"]["json"]

    stack.start_grpc()
    with grpc.insecure_channel(stack.grpc_address) as channel:
        stub = hydra_pb2_grpc.HydraStub(channel)
        admin = (("authorization", f"Bearer {stack.admin_token}"),)
        body = {"name": unique("grpc-monitor"), "command": "true", "schedule": YEARLY, "monitor": True}
        made = stub.SubmitJob(
            hydra_pb2.SubmitJobRequest(job=json_format.ParseDict(body, hydra_pb2.JobSpec())), metadata=admin
        )
        assert stub.GetJob(hydra_pb2.GetJobRequest(job_id=made.job_id), metadata=admin).monitor is True
        plain = stub.SubmitJob(
            hydra_pb2.SubmitJobRequest(job=json_format.ParseDict({**body, "monitor": False}, hydra_pb2.JobSpec())),
            metadata=admin,
        )
        assert stub.GetJob(hydra_pb2.GetJobRequest(job_id=plain.job_id), metadata=admin).monitor is False

    stack.start_api()
    made_cli = answer(hydra(stack, "submit", "--monitor", "--cron", YEARLY, "--", "true"))
    assert answer(hydra(stack, "job", "show", made_cli["job_id"]))["monitor"] is True

    console = browser(stack.admin_token)
    token = csrf(console.get("/ui/submit"))
    name = unique("form-monitor")
    posted = console.post(
        "/ui/submit",
        data={"csrf_token": token, "name": name, "command": "true", "schedule": YEARLY, "monitor": "true"},
    )
    assert posted.status_code == 302, posted.data
    job_id = posted.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    assert api.get(f"/jobs/{job_id}").json["monitor"] is True
    page = console.get(f"/ui/jobs/{job_id}").data.decode()
    assert "counted per job on /metrics (monitor)" in page
    for job in (made.job_id, plain.job_id, made_cli["job_id"], job_id):
        assert api.delete(f"/jobs/{job}").status_code in (200, 204)
