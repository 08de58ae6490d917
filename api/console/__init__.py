"""Hydra's web console at ``/ui/``: a home page of what matters now, jobs with their last runs,
runs with live output, workers, schedules, dead letters, placement and charts, served by the
API itself (templates and assets in this package, nothing from the internet).

It is a client of the same control layer as the REST API: every page reads through
``hydra.control.access.Reader`` and every action is a verb of ``hydra.control.verbs``, with the
principal its session proves (``api.console.session``), so a role sees and may do exactly what
it may through REST. Every listing is one bounded page (the API's limits and cursors).
"""

from __future__ import annotations

from flask import Flask

from api.console import actions, data, download, home, jobfiles, pages, present, session, trigger
from api.console.blueprint import bp

__all__ = ["actions", "data", "download", "home", "init_app", "jobfiles", "pages", "present", "trigger"]


def init_app(app: Flask) -> None:
    session.configure(app)
    app.register_blueprint(bp)
