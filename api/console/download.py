"""The console's download of a run's output (``GET /ui/runs/<id>/output.txt``): what
``GET /runs/{id}/output.txt`` answers, for the session's principal (who may read the run)."""

from __future__ import annotations

from api.console.blueprint import bp
from api.console.pages import reader
from api.output import attachment
from hydra.control.output import download


@bp.get("/runs/<run_id>/output.txt")
def output_text(run_id: str):
    _run, body, full = download(reader(), run_id)
    return attachment(run_id, body, full=full)
