"""gunicorn settings read from the working directory (``gunicorn "api:create_app()"``).

Only logging lives here: gunicorn's own lines (master, workers, access log) follow
``LOG_FORMAT`` / ``LOG_LEVEL`` like every other Hydra process (see ``hydra.logs``).
"""

import os

logger_class = "hydra.logs.GunicornLogger"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
