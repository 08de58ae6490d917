"""Is Hydra able to work: are Redis, MongoDB and a controller up, how many workers are online.

``GET /health`` answers with :func:`check`; the gRPC server's health service reports
SERVING exactly when it finds nothing down.
"""

from __future__ import annotations

from hydra.broker.registry import Registry
from hydra.errors import Unavailable
from hydra.store.mongo import ping

#: What must be up for Hydra to accept and run jobs.
REQUIRED = ("redis", "mongodb", "controller")


def check() -> dict:
    """``{status: ok|down, down: [...], redis, mongodb, controller, workers, message?}``."""
    body: dict = {
        "status": "ok",
        "down": [],
        "redis": {"ok": True},
        "mongodb": {"ok": True},
        "controller": {"ok": False},
        "workers": {"online": 0, "offline": 0},
    }
    registry = Registry()
    try:
        registry.ping()
        alive = registry.controller_alive()
        body["controller"] = {"ok": bool(alive), "name": alive}
        for record in registry.records().values():
            body["workers"][record.status] = body["workers"].get(record.status, 0) + 1
    except Unavailable as exc:
        body["redis"] = {"ok": False, "error": str(exc)}
    try:
        ping()
    except Unavailable as exc:
        body["mongodb"] = {"ok": False, "error": str(exc)}
    body["down"] = [name for name in REQUIRED if not body[name]["ok"]]
    if body["down"]:
        body["status"] = "down"
        body["message"] = "down: " + ", ".join(body["down"])
    return body
