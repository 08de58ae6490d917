# Hydra: local stack and tests.  `make up` starts everything, `make down` stops it.
SHELL := /bin/bash
PY    := .venv/bin/python
# The local stack (deploy/local/hydrastack) is dev tooling, outside the installed package.
STACK := PYTHONPATH=deploy/local $(PY) -m hydrastack
ROOT  := .hydra
LINES ?= 50

.PHONY: install up down status logs lint docs docs-serve wheel test bench bench-ops bench-history bench-fleet bench-soak chaos overload load proto clean

install:
	@bash deploy/local/install.sh

up: install
	@$(STACK) up

down:
	@if [ -x $(PY) ]; then $(STACK) down; \
	else echo "nothing to stop (no .venv: \`make install\` never ran)"; fi

status:
	@if [ -x $(PY) ]; then $(STACK) status; \
	else echo "not installed (run \`make install\`)"; fi

# Tail of every log; `make logs FOLLOW=1` keeps following them.
logs:
	@if ! ls $(ROOT)/logs/*.log >/dev/null 2>&1; then echo "no logs in $(ROOT)/logs"; \
	elif [ -n "$(FOLLOW)" ]; then tail -n $(LINES) -F $(ROOT)/logs/*.log; \
	else tail -n $(LINES) $(ROOT)/logs/*.log; fi

# ruff (lint and format), mypy (model, stores, dispatch, broker), import-linter (the layers),
# and the documentation site built strictly (a broken link, anchor or page fails).
lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	PYTHONPATH=deploy/local .venv/bin/lint-imports
	$(MKDOCS) build --strict --quiet

# The documentation site (MkDocs, Material for MkDocs) from docs/ into site/; the REST, CLI and
# settings references are generated from the code as it builds. docs-serve: on 127.0.0.1:8001.
MKDOCS := NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs
docs: install
	$(MKDOCS) build --strict
	@echo "open site/index.html"

docs-serve: install
	$(MKDOCS) serve --strict --dev-addr 127.0.0.1:8001

# The hydra-jobs wheel into dist/ (pip install it on a worker machine; [server] for the API).
wheel: install
	$(PY) -m build --wheel --no-isolation --outdir dist .

test: lint
	$(PY) -m pytest -q

# bench/run.py: throughput and CPU per job by process (beside bare Celery's), latency, failover;
# bench/follow.py: /health and each line's delay with 64 output followers (server-sent events);
# bench/console.py: how soon the web console shows a new line of output (headless Chromium);
# bench/signing.py: what signing and checking a message costs (HMAC-SHA256 beside Ed25519).
bench: install
	$(PY) bench/run.py
	$(PY) bench/follow.py
	$(PY) bench/console.py
	$(PY) bench/signing.py

# bench/ops.py: every MongoDB command and Redis round trip of an echo job, by process and by the
# code that makes it (a probe loaded into the stack's processes), and Redis's own count per job.
bench-ops: install
	$(PY) bench/ops.py $(BENCH_ARGS)

# Locust, headless, against the live API (HYDRA_API_URL, make up's by default; PRIVATE=1: a
# private stack on free ports) with LOAD_USERS users for LOAD_TIME; prints Locust's table.
LOAD_USERS ?= 16
LOAD_TIME  ?= 60s
load: install
	$(PY) load/run.py --users $(LOAD_USERS) --time $(LOAD_TIME) $(if $(PRIVATE),--private)

# The gRPC code in hydra/v1 from proto/hydra/v1/hydra.proto (grpcio-tools); commit the result.
proto: install
	$(PY) proto/generate.py

# Listings, sweeps, a controller tick, failover and latency at 0, 100k and 1M runs of history
# (bulk-loaded; about an hour on two cores). BENCH_ARGS="--points 100000:30000" for less.
bench-history: install
	$(PY) bench/history_bench.py $(BENCH_ARGS)

# bench/fleet.py: 1,000 simulated workers heartbeating, 100 jobs/s: routing, controller CPU, detection.
bench-fleet: install
	$(PY) bench/fleet.py

# bench/soak.py: one worker runs 5,000 jobs; its processes, open files and memory after 50 and
# after 5,000 (a few minutes; exits 1 when one grew beyond its margin). BENCH_ARGS="--jobs 1000" for less.
bench-soak: install
	$(PY) bench/soak.py $(BENCH_ARGS)

# tests/chaos: workers and a controller in network namespaces, links cut and slowed with
# iptables and a delaying relay (root; about 4 minutes). Not part of make test; .ci/run runs it after.
chaos: install
	HYDRA_CHAOS=1 $(PY) -m pytest -q -s tests/chaos

# tests/integration/test_overload.py: 2,000 jobs from 8 REST clients against a real stack, /health
# 200 at every poll and every job ended (2-4 minutes). Not part of make test; .ci/run runs it after.
overload: install
	HYDRA_OVERLOAD=1 $(PY) -m pytest -q -s tests/integration/test_overload.py

clean: down
	rm -rf $(ROOT) site dist
