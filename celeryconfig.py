"""Celery configuration: Hydra's settings (``hydra.settings``) mapped onto Celery's names.

``hydra.celery.app`` loads it by name (``config_from_object("celeryconfig")``); it reads every
value from the one settings object, so nothing here is configured twice.
"""

from hydra.broker import transport as hydra_transport
from hydra.model import priority as hydra_priority
from hydra.settings import get_settings

# kombu's Redis and Sentinel transports, with the fix a worker needs when its connection
# breaks while it holds unacknowledged messages (hydra/broker/transport.py).
hydra_transport.register()

_settings = get_settings()

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
broker_transport_options = {
    # Unacknowledged messages come back after this long; Hydra's fences make the
    # redelivery of a still-running attempt harmless (it is not executed twice).
    "visibility_timeout": _settings.visibility_timeout,
    # Job priorities: one list per level, <queue>:0 (served first) ... <queue>:9, mapped from
    # a job's 0-100 by hydra.model.priority.broker_level (set on every send by hydra.dispatch.pipeline).
    "priority_steps": hydra_priority.LEVELS,
    "sep": hydra_priority.SEP,
    "queue_order_strategy": "priority",
}
if _settings.broker_url.startswith("sentinel://"):
    # Redis Sentinel through kombu's own transport: the sentinels in the URL, the master by
    # name (hydra.broker.redis reaches the same master for Hydra's own keys).
    broker_transport_options["master_name"] = _settings.broker_master_name
    if _settings.broker_sentinel_password:
        broker_transport_options["sentinel_kwargs"] = {"password": _settings.broker_sentinel_password}

# Runs are recorded in MongoDB by Hydra's backend (a run's result is its job_runs record).
result_backend = "hydra.celery.backend:HydraBackend"
result_expires = None  # run history is kept; no celery.backend_cleanup
result_backend_always_retry = True  # MongoDB outage: keep retrying with backoff
result_backend_max_retries = 120
result_backend_base_sleep_between_retries_ms = 100
result_backend_max_sleep_between_retries_ms = 5000

# JSON only: a worker runs commands for others and must never unpickle.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# No task_routes: the dispatch pipeline (hydra.dispatch.pipeline) names the queue of every send.
task_create_missing_queues = True

# At-least-once: acknowledge after the attempt ended; the run fences stop duplicates.
task_acks_late = True
task_reject_on_worker_lost = False
worker_prefetch_multiplier = 1
task_track_started = False

# Events feed the controller (heartbeats, task ends) and Flower.
worker_send_task_events = True
task_send_sent_event = True

worker_hijack_root_logger = False
# A message the worker cannot decode or does not know is recorded before it is dropped.
worker_consumer = "hydra.celery.consumer:HydraConsumer"
timezone = "UTC"
enable_utc = True
