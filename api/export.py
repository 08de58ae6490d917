"""``/export/runs``: history as JSON Lines, the way retention archives it before pruning (admins)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import caller
from api.parsing import Blueprint
from hydra.control import archive

blp = Blueprint("export", __name__, url_prefix="/export", description="History export (admins).")

#: The media type of JSON Lines.
NDJSON = "application/x-ndjson"


class ExportArgs(Schema):
    class Meta:
        unknown = EXCLUDE

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
        validate=validate.Length(1, 200),
        metadata={"description": "Only this namespace (default: every one the caller administers)."},
    )


@blp.route("/runs")
class ExportRuns(MethodView):
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(
        responses={
            "200": {
                "description": "One run record per line (JSON Lines, times in ISO 8601), job by job, oldest "
                "jobs first: the lines retention writes to HYDRA_RETENTION_EXPORT before it prunes.",
                "content": {NDJSON: {"schema": {"type": "string"}}},
            },
            "422": {"description": "A query parameter is invalid; `errors.query` names it."},
        }
    )
    def get(self, args):
        """Export the runs that ended before a cutoff (admins of the namespaces concerned)."""
        lines = archive.export_runs(
            caller(), older_than=args["older_than"], namespaces=[args["namespace"]] if args["namespace"] else []
        )
        return Response(lines, mimetype=NDJSON)
