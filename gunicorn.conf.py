"""gunicorn settings read from the working directory (``gunicorn "api:create_app()"``).

* Logging: gunicorn's own lines (master, workers, access log) follow ``LOG_FORMAT`` /
  ``LOG_LEVEL`` like every other Hydra process (see ``hydra.logs``).
* Request limits, checked by gunicorn before the API sees a request, and answered in the API's
  one error shape (``api.errors.answer_gunicorn_errors_in_json``): a request line (method,
  path, query and version) over ``limit_request_line`` bytes gets 414; more than
  ``limit_request_fields`` header fields, or one (name and value) over
  ``limit_request_field_size`` bytes, gets 431. A body over 2 MiB gets 413 from the API.
"""

import os

logger_class = "hydra.logs.GunicornLogger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn's defaults, stated here because the API documents them.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def post_worker_init(worker):
    from api.errors import answer_gunicorn_errors_in_json

    answer_gunicorn_errors_in_json(worker.cfg)
