"""gunicorn settings read from the working directory (``gunicorn "api:create_app()"``).

* Logging: gunicorn's own lines (master, workers, access log) follow ``LOG_FORMAT`` /
  ``LOG_LEVEL`` like every other Hydra process (see ``hydra.logs``).
* Request limits, checked by gunicorn before the API sees a request, and answered in the API's
  one error shape (``api.errors.answer_gunicorn_errors_in_json``): a request line (method,
  path, query and version) over ``limit_request_line`` bytes gets 414; more than
  ``limit_request_fields`` header fields, or one (name and value) over
  ``limit_request_field_size`` bytes, gets 431. A body over 2 MiB gets 413 from the API.
"""

# The API runs gunicorn's gevent worker class (deploy/: a follower of a run's output holds no
# thread). gevent patches the standard library when a worker starts, but by then this file's
# logger class has imported hydra, and with it ssl and redis, unpatched: gevent warns on stderr
# (not a log line) and leaves those imports blocking. Patching here, before anything else is
# imported, makes master and workers start patched.
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402 - after the patch, on purpose

from api.green import redis_checks_without_the_hub  # noqa: E402

# redis-py's check before each command (a poll with a zero timeout) skips gevent's hub: 7 % of
# the API's CPU in make bench's burst (api/green.py).
redis_checks_without_the_hub()

worker_class = "gevent"
logger_class = "hydra.logs.GunicornLogger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# gunicorn's defaults, stated here because the API documents them.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def post_worker_init(worker):
    from api.errors import answer_gunicorn_errors_in_json

    answer_gunicorn_errors_in_json(worker.cfg)
