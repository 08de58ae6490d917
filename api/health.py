"""``/health``: are Redis, MongoDB and the controller up, and how many workers are online."""

from __future__ import annotations

from flask.views import MethodView

from api.parsing import Blueprint
from api.schemas import HealthSchema
from hydra.broker.registry import Registry
from hydra.errors import Unavailable
from hydra.store.mongo import ping

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health.")


def check() -> tuple[dict, int]:
    body = {
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
    body["down"] = [name for name in ("redis", "mongodb", "controller") if not body[name]["ok"]]
    if body["down"]:
        body["status"] = "down"
        body["message"] = "down: " + ", ".join(body["down"])
    return body, 503 if body["down"] else 200


@blp.route("/", strict_slashes=False)
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A required service is down (named in `down`).")
    def get(self):
        """Health of Redis, MongoDB and the controller, and workers online."""
        return check()
