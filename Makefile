# Hydra: local stack and tests.  `make up` starts everything, `make down` stops it.
SHELL := /bin/bash
PY    := .venv/bin/python
ROOT  := .hydra
LINES ?= 50

.PHONY: install up down status logs test bench clean

install:
	@bash deploy/local/install.sh

up: install
	@$(PY) -m hydra.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m hydra.stack down; \
	else echo "nothing to stop (no .venv: \`make install\` never ran)"; fi

status:
	@if [ -x $(PY) ]; then $(PY) -m hydra.stack status; \
	else echo "not installed (run \`make install\`)"; fi

# Tail of every log; `make logs FOLLOW=1` keeps following them.
logs:
	@if ! ls $(ROOT)/logs/*.log >/dev/null 2>&1; then echo "no logs in $(ROOT)/logs"; \
	elif [ -n "$(FOLLOW)" ]; then tail -n $(LINES) -F $(ROOT)/logs/*.log; \
	else tail -n $(LINES) $(ROOT)/logs/*.log; fi

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) bench/run.py

clean: down
	rm -rf $(ROOT)
