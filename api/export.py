"""``/export/runs``: history as JSON Lines, the way retention archives it before pruning (admins)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from marshmallow import RAISE, Schema, fields, validate

from api.auth import caller
from api.parsing import Blueprint
from hydra.control import archive
from hydra.model.namespaces import Namespace

blp = Blueprint("export", __name__, url_prefix="/export", description="History export (admins).")

#: The media type of JSON Lines.
NDJSON = "application/x-ndjson"


class ExportArgs(Schema):
    """A mistyped argument (``older=0`` for ``older_than``) would export with the default cutoff:
    unknown arguments are refused (422 naming them)."""

    class Meta:
        unknown = RAISE

    older_than = fields.Float(
        load_default=None,
        validate=validate.Range(0, 36500),
        metadata={
            "description": "Days: runs that ended longer ago (default: HYDRA_RETENTION_DAYS, what retention "
            "prunes next; 0: every run that ended)."
        },
    )
    namespace = fields.String(
        load_default=None,
        validate=Namespace(),
        metadata={"description": "Only this namespace (default: every one the caller administers)."},
    )


@blp.route("/runs")
class ExportRuns(MethodView):
    @blp.arguments(ExportArgs, location="query", unknown=RAISE)  # webargs would EXCLUDE unknown query args
    @blp.doc(
        responses={
            "200": {
                "description": "One run record per line (JSON Lines, times in ISO 8601), job by job, oldest "
                "jobs first: the lines retention writes to HYDRA_RETENTION_EXPORT before it prunes.",
                "content": {NDJSON: {"schema": {"type": "string"}}},
            },
            "422": {"description": "A query parameter is invalid or unknown; `errors.query` names it."},
        }
    )
    def get(self, args):
        """Export the runs that ended before a cutoff (admins of the namespaces concerned)."""
        lines = archive.export_runs(
            caller(), older_than=args["older_than"], namespaces=[args["namespace"]] if args["namespace"] else []
        )
        return Response(lines, mimetype=NDJSON)
