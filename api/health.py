"""``/health``: are Redis, MongoDB and the controller up, and how many workers are online."""

from __future__ import annotations

from flask.views import MethodView

from api.parsing import Blueprint
from api.schemas.workers import HealthSchema
from hydra.control import health

blp = Blueprint("health", __name__, url_prefix="/health", description="Service health.")


def check() -> tuple[dict, int]:
    body = health.check()
    return body, 503 if body["down"] else 200


@blp.route("/", strict_slashes=False)
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A required service is down (named in `down`).")
    def get(self):
        """Health of Redis, MongoDB and the controller, and workers online."""
        return check()
