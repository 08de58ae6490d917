"""``/workers``: the workers the controller knows, with liveness and load."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import caller
from api.parsing import Blueprint
from api.schemas import WorkerSchema
from hydra.control.access import Reader

blp = Blueprint("workers", __name__, url_prefix="/workers", description="Workers and their liveness.")


@blp.route("/", strict_slashes=False)
class Workers(MethodView):
    @blp.response(200, WorkerSchema(many=True))
    def get(self):
        """List workers: profile (os, tags, allowed users, max concurrency), status, heartbeat, load."""
        return Reader(caller()).workers_with_load()
