"""/metrics on the real stack: counters from API and worker processes, gauges from Redis;
the Grafana dashboard uses only metrics that exist."""

from __future__ import annotations

import json
import re

import requests
from prometheus_client.parser import text_string_to_metric_families

from hydra import names
from hydra.broker.registry import Registry
from hydrastack import REPO
from tests.conftest import CPU, GPU, STACK
from tests.helpers import submit, unique, wait_run, wait_until


def scrape(url: str, token: str | None = None) -> dict:
    token = token or STACK.metrics_token
    response = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def quiet() -> bool:
    """Nothing runs or waits on the two standing workers (earlier tests' runs have ended)."""
    registry = Registry()
    loads = registry.loads()
    return not any(loads.get(spec.node) for spec in (GPU, CPU)) and not any(
        registry.queued(names.worker_queue(spec.node)) for spec in (GPU, CPU)
    )


def delta(after: dict, before: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_across_processes_and_show_queues_and_workers(api, stack):
    stack.start_api()
    wait_until(quiet, 60, interval=0.2, message="earlier runs to end")
    before = scrape(stack.api_url)
    ok = submit(api, "sleep 0.3")
    bad = submit(api, "exit 2")
    waiting = submit(api, "true", affinity={"os": ["linux"], "tags": [unique("none").lower()]})
    assert waiting["status"] == "pending"
    ended = [wait_run(ok["run_id"]), wait_run(bad["run_id"])]
    after = scrape(stack.api_url)

    # Jobs are counted where they are accepted (this process), runs where they end (the workers),
    # each exactly once: a run counted twice (say by a late result as well) fails this.
    assert delta(after, before, "hydra_jobs_submitted_total", source="api") == 3
    for status in ("succeeded", "failed"):
        assert delta(after, before, "hydra_runs_finished_total", status=status) == 1
    assert delta(after, before, "hydra_run_duration_seconds_count") == 2
    assert delta(after, before, "hydra_run_duration_seconds_bucket", le="+Inf") == 2
    assert delta(after, before, "hydra_run_duration_seconds_bucket", le="5.0") == 2
    # the sum is the two runs' recorded durations (however long a loaded machine made them)
    recorded = sum(run.duration for run in ended)
    assert recorded >= 0.3 and abs(delta(after, before, "hydra_run_duration_seconds_sum") - recorded) < 0.05

    assert value(after, "hydra_workers_online") >= 2 and value(after, "hydra_controller_up") == 1
    # The gauge is the pending queue's depth. Earlier tests' pending runs may end meanwhile (their
    # jobs deleted, their workers started), so it is compared with the queue, not with a delta.
    wait_until(
        lambda: value(scrape(stack.api_url), "hydra_pending_runs") == Registry().queued(names.PENDING_QUEUE) >= 1,
        20,
        interval=0.2,
        message="hydra_pending_runs to be the pending queue's depth, this test's run among them",
    )
    # ... and the pending queue's row among the queue depths says the same, in the same scrape
    assert value(after, "hydra_queue_depth", queue=names.PENDING_QUEUE, worker="") == value(after, "hydra_pending_runs")
    assert (("hydra_worker_load", (("worker", GPU.node),))) in after

    # Five sleeps for the gpu worker (2 slots): the rest wait in its queue, and it shows.
    for _ in range(5):
        submit(api, "sleep 2", affinity={"os": ["linux"], "tags": ["gpu"]})
    gpu_queue = names.worker_queue(GPU.node)
    wait_until(
        lambda: value(scrape(stack.api_url), "hydra_queue_depth", queue=gpu_queue, worker=GPU.node) >= 1,
        20,
        interval=0.2,
        message="the gpu worker's queue depth shows waiting runs",
    )
    assert api.post(f"/runs/{waiting['run_id']}/cancel").status_code == 200


def test_the_grafana_dashboard_uses_only_metrics_that_exist(stack):
    stack.start_api()
    served = {name for name, _labels in scrape(stack.api_url)}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "hydra.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bhydra_[a-z_]+", expr)}
    assert used and used <= served, used - served
    assert {
        "hydra_jobs_submitted_total",
        "hydra_runs_finished_total",
        "hydra_run_duration_seconds_bucket",
        "hydra_queue_depth",
        "hydra_workers_online",
        "hydra_pending_runs",
    } <= used
