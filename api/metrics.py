"""``/metrics``: Prometheus metrics of the whole installation (see ``hydra.metrics``)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.parsing import Blueprint
from hydra.broker.metrics import HydraCollector
from hydra.control.job_metrics import JobCollector

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")

_registry = CollectorRegistry(auto_describe=False)
_registry.register(HydraCollector())
_registry.register(JobCollector())


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        responses={
            "200": {
                "description": "Metrics in the Prometheus text format: jobs submitted, runs finished by status, "
                "run durations, queue depth per worker queue, pending and delayed runs, workers "
                "online and offline, load per worker, controller liveness, dead letters per namespace; "
                "per cron or monitored job its last success and failure and a cron job's next tick, "
                "ended runs per monitored job; pending runs and online workers by tag.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self):
        """Prometheus metrics (counters aggregated over every API, controller and worker process)."""
        return Response(generate_latest(_registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
