"""Hydra's REST API: a Flask app built with flask-smorest (blueprints and schemas only).

``create_app()`` is the factory gunicorn runs (``gunicorn "api:create_app()"``). The core
lives in ``hydra``; this package only maps HTTP onto it.
"""

from __future__ import annotations

from flask import Flask, g

from api import (
    audit,
    auth,
    console,
    docs,
    errors,
    export,
    fanout,  # noqa: F401 - its route, on the jobs' blueprint
    health,
    jobfiles,  # noqa: F401 - its route, on the jobs' blueprint
    jobs,
    metrics,
    namespaces,
    output,
    related,  # noqa: F401 - its routes, on the jobs' and runs' blueprints
    runs,
    schedule,
    tasks,
    tokens,
    workers,
)
from api.schemas.common import SKIPPED_HEADER
from hydra import logs
from hydra.dispatch import signing
from hydra.model.spec import StartTime


def create_app(test_config: dict | None = None) -> Flask:
    logs.configure("api")
    signing.require_signing()  # no API that cannot sign what it submits (SigningKeyMissing names the settings)
    app = Flask(__name__)
    app.config.update(
        API_TITLE="Hydra",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    api = docs.HydraApi(app, spec_kwargs=docs.configure(app))
    api.register_field(StartTime, "string", None)  # date-time with zone, or "" (pattern in its metadata)
    errors.init_app(app)
    auth.init_app(app)
    auth.document(api.spec)
    for module in (jobs, runs, workers, health):
        api.register_blueprint(module.blp)
    for blueprint in (
        runs.dead_letter_blp,
        schedule.blp,
        output.blp,
        metrics.blp,
        tokens.blp,
        audit.blp,
        namespaces.blp,
        tasks.blp,
        export.blp,
    ):
        api.register_blueprint(blueprint)
    docs.describe_fields(api)
    console.init_app(app)

    @app.after_request
    def say_what_was_skipped(response):
        skipped = g.get("hydra_skipped")
        if skipped:
            response.headers[SKIPPED_HEADER] = f"{len(skipped)}: {', '.join(skipped[:20])}"
        return response

    return app
