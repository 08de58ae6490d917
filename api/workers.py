"""``/workers``: the workers the controller knows, with liveness and load."""
from __future__ import annotations

import pymongo
from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas import WorkerSchema
from hydra import names
from hydra.db import get_database
from hydra.registry import Registry

blp = Blueprint("workers", __name__, url_prefix="/workers", description="Workers and their liveness.")


@blp.route("/", strict_slashes=False)
class Workers(MethodView):
    @blp.response(200, WorkerSchema(many=True))
    def get(self):
        """List workers: profile (os, tags, allowed users, max concurrency), status, heartbeat, load."""
        docs = list(get_database()[names.WORKERS].find().sort("_id", pymongo.ASCENDING))
        try:
            loads = Registry().loads()
        except Exception:  # noqa: BLE001 - the view still answers without Redis
            loads = {}
        for doc in docs:
            doc["load"] = loads.get(doc["_id"], 0)
        return docs
