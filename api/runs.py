"""``/runs``: one run (attempt) by id."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas import RunSchema
from hydra.runs import RunStore

blp = Blueprint("runs", __name__, url_prefix="/runs", description="Runs: one attempt at executing a job.")


@blp.route("/<run_id>")
class Run(MethodView):
    @blp.response(200, RunSchema)
    @blp.alt_response(404, description="No run with that id.")
    def get(self, run_id):
        """Get a run: status, exit code, output, worker, attempt, times."""
        return RunStore().get(run_id)
