# Hydra: one image for every role - the role is the command.
#
#   docker build -t hydra .
#   docker run --init hydra hydra init-db
#   docker run --init hydra hydra controller
#   docker run --init hydra celery -A hydra worker -Q os.linux -n worker@%h -c 4 -E --loglevel INFO
#   docker run --init -p 127.0.0.1:8000:8000 hydra gunicorn --bind 0.0.0.0:8000 --workers 2 \
#       --threads 4 --timeout 60 --access-logfile - --no-control-socket "api:create_app()"
#   docker run --init -e FLOWER_BASIC_AUTH=admin:... hydra celery -A hydra flower --address=0.0.0.0 --port=5555
#
# Configuration is the environment (HYDRA_BROKER_URL, HYDRA_MONGO_URL, ... - see
# deploy/systemd/hydra.env.example); docker-compose.yml wires a whole stack.
# Run it with an init (--init, or `init: true` in Compose): workers' commands can leave
# orphans, and an init reaps them and passes SIGTERM (Celery's warm shutdown) on.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# bash: jobs' default shell on Linux (sh is dash here); procps: ps/pgrep/kill for people
# looking into a worker (Hydra's own tree kill reads /proc through psutil). Not pinned: the
# base image's Debian release decides, and its security updates should come in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Pinned dependencies first: this layer is reused while only Hydra's code changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# gunicorn reads gunicorn.conf.py from its working directory (/app): keep it there.
COPY pyproject.toml README.md gunicorn.conf.py ./
COPY hydra ./hydra
COPY api ./api
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Fail the build, not the first job, if something is missing.
RUN python -c "import celeryconfig, hydra.celery.app, hydra.execution.executors, api, gunicorn, flower, hydra.rpc.server" \
    && hydra --help >/dev/null

# Non-root: a worker runs commands as its own OS user. Numeric, so that runtimes can
# check it is not root (runAsNonRoot); the name is hydra.
RUN useradd --create-home --home-dir /home/hydra --shell /bin/bash --uid 10001 --user-group hydra
USER 10001:10001

# API, Flower, gRPC (published by whoever runs the container; bind them to loopback on the host).
EXPOSE 8000 5555 50051

CMD ["hydra", "--help"]
