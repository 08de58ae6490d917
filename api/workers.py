"""``/workers``: the workers the controller knows, with liveness, load and drain; drain a
worker (take it out of placement) and undrain it."""

from __future__ import annotations

from flask.views import MethodView

from api.auth import caller
from api.parsing import Blueprint
from api.schemas.workers import DrainBodySchema, DrainSchema, WorkerSchema
from hydra.control import drain
from hydra.control.access import Reader

blp = Blueprint("workers", __name__, url_prefix="/workers", description="Workers and their liveness.")

#: The path's worker, as the OpenAPI description shows it.
WORKER_PARAMETER = {
    "in": "path",
    "name": "worker_id",
    "required": True,
    "description": "The worker's name, as `GET /workers/` lists it (`id`), e.g. `cpu1@host`.",
    "schema": {"type": "string"},
}
NO_WORKER = "No worker with that name (or none this caller may see)."


@blp.route("/", strict_slashes=False)
class Workers(MethodView):
    @blp.response(200, WorkerSchema(many=True))
    def get(self):
        """List workers: profile (os, tags, allowed users, max concurrency), status, heartbeat, load, drain."""
        return Reader(caller()).workers_with_load()


@blp.route("/<worker_id>/drain", parameters=[WORKER_PARAMETER])
class WorkerDrain(MethodView):
    @blp.arguments(DrainBodySchema(), required=False)
    @blp.response(200, DrainSchema)
    @blp.alt_response(404, description=NO_WORKER)
    def post(self, body, worker_id):
        """Drain a worker: no new run is placed on it.

        What runs there finishes; what waits in its queue goes back through the router (to
        another eligible worker, or `pending` with a reason that starts with `draining` when no
        other one fits). Kept in MongoDB: it holds across controller failovers until the worker
        is undrained. Needs the operator role in every namespace the worker serves (`*` for a
        worker that serves all). Draining a drained worker again keeps the new reason."""
        return drain.drain(caller(), worker_id, reason=(body or {}).get("reason"))

    @blp.response(204)
    @blp.alt_response(404, description=NO_WORKER)
    def delete(self, worker_id):
        """Undrain a worker: it takes new runs again (what waits in `hydra.pending` for it is
        placed at the controller's next pass). Idempotent."""
        drain.undrain(caller(), worker_id)
