"""``/workers``: the workers the controller knows, with liveness and load."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import caller
from api.parsing import Blueprint
from api.schemas import WorkerSchema
from hydra.broker.registry import Registry
from hydra.control.access import Reader
from hydra.errors import Unavailable

blp = Blueprint("workers", __name__, url_prefix="/workers", description="Workers and their liveness.")


@blp.route("/", strict_slashes=False)
class Workers(MethodView):
    @blp.response(200, WorkerSchema(many=True))
    def get(self):
        """List workers: profile (os, tags, allowed users, max concurrency), status, heartbeat, load."""
        workers = Reader(caller()).all_workers()
        try:
            loads = Registry().loads()
        except Unavailable:  # the view still answers without Redis
            loads = {}
        for worker in workers:
            worker.load = loads.get(worker.id, 0)
        return workers
