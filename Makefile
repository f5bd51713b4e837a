# The two commands a newcomer needs: `make demo` and `make test`. Both install what they
# need into .venv first (pyproject.toml is the one list of dependencies).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# A pytest worker per core (pytest-xdist); the integration tests stay on one of them, one
# after another (tests/conftest.py). PYTEST_WORKERS= runs everything in one process.
PYTEST_WORKERS ?= -n auto --dist loadgroup

.PHONY: demo test test-fast _pytest lint install system-packages focus-validator clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11 or newer is needed; run with PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# The FinOps Foundation's FOCUS validator, which tests/integration/test_focus_validator.py
# runs on the demo's FOCUS export, in a virtualenv of its own (FOCUS_VENV): it needs Python
# 3.12 (3.12 or newer, and its pinned pyarrow<16 has wheels up to 3.12 only), which Debian 12
# does not ship, so it takes python3.12 from PATH or pyenv. Without one it says so, and the
# test skips (fails in CI).
FOCUS_VENV ?= .venv-focus
FOCUS_REQUIREMENTS := tests/focus-validator-requirements.txt
FOCUS_PYTHON ?= $(shell for p in python3.12 \
  $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do \
  $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 \
  && { command -v $$p; break; }; done)

focus-validator: $(FOCUS_VENV)/.installed

$(FOCUS_VENV)/.installed: $(FOCUS_REQUIREMENTS)
	@if [ -z "$(FOCUS_PYTHON)" ]; then \
	  echo "No Python 3.12 or newer found (PATH, pyenv): the FOCUS validator is not installed"; \
	  echo "and tests/integration/test_focus_validator.py skips (fails with PORTAL_REQUIRE_SERVICES=1)."; \
	  exit 0; fi; \
	set -e; rm -rf $(FOCUS_VENV); \
	$(FOCUS_PYTHON) -m venv $(FOCUS_VENV); \
	$(FOCUS_VENV)/bin/pip install --quiet --no-deps -r $(FOCUS_REQUIREMENTS); \
	$(FOCUS_VENV)/bin/python -c "import focus_validator.main"; \
	touch $@

# The Debian packages the tests run (Prometheus, espeak-ng, ffmpeg, Chromium): installed with
# apt-get as root or with password-less sudo; otherwise it says what is missing and how to
# install it, and the tests that need them skip, each saying why.
system-packages: install
	$(BIN)/python -m portal.system_packages test

# The embedded mode: SQLite and the SQLite broker (portal/broker.py) under var/
# (PORTAL_VAR_DIR), unless DATABASE_URL or CELERY_BROKER_URL say otherwise. run_demo
# installs Prometheus, espeak-ng and ffmpeg where it can (apt-get as root or with password-less sudo; otherwise it says
# how), backfills demo GPU history the first time, pulls it into the ledger, then runs
# Prometheus (scraping the worker's job counter), a Celery worker that also runs the demo
# jobs (queues gpu.<class>.<tier>, metrics on port 9808), Celery beat and the web server
# until Ctrl-C, starting again whichever of them stops (logs in var/log/, job output in
# var/media/jobs/).
# DEMO_ARGS passes options on, e.g. DEMO_ARGS=--rebuild-history or DEMO_ARGS=--metrics-port=9818.
DEMO_ARGS ?=
demo: install
	@mkdir -p "$${PORTAL_VAR_DIR:-var}/media"
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --url http://$(HOST):$(PORT)
	$(BIN)/python manage.py run_demo --host $(HOST) --port $(PORT) $(DEMO_ARGS)

# Runs on DATABASE_URL when set; otherwise on a local PostgreSQL (postgres@127.0.0.1) when
# one answers, else on SQLite, where the PostgreSQL-only tests are skipped and say so.
# CI sets PORTAL_REQUIRE_SERVICES=1, which turns every such skip into a failure.
test: install lint system-packages focus-validator
	@$(MAKE) --no-print-directory _pytest

# The tests without tests/integration/ (no Prometheus, broker, browser or demo processes):
# 2.5 to 4.5 minutes on 2 cores.
test-fast: install lint
	@$(MAKE) --no-print-directory _pytest PYTEST_ARGS="--ignore=tests/integration $(PYTEST_ARGS)"

_pytest:
	@if [ -z "$$DATABASE_URL" ] && $(BIN)/python -c "import psycopg2; psycopg2.connect(host='127.0.0.1', user='postgres', dbname='postgres', connect_timeout=2)" 2>/dev/null; then \
	  export DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal; fi; \
	echo "Testing on $${DATABASE_URL:-SQLite (no PostgreSQL found at 127.0.0.1)}"; \
	$(BIN)/pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) $(FOCUS_VENV) var staticfiles .pytest_cache .ruff_cache
