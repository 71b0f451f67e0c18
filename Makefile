# Allegiance: the two commands are `make run` and `make test`; `make help` lists the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist workers for `make test` (each worker builds its own template databases).
WORKERS ?= 2
PYTEST_ARGS ?=
# The newest Python 3.11+ on the PATH (only used to create the virtualenv).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	echo $$p; break; fi; done)
STAMP := $(VENV)/.installed

.PHONY: help install run serve demo db-upgrade test lint ruff mypy imports pytest bench \
	mutation install-browser clean

help: ## List the targets
	@echo "Allegiance: set up and try it with 'make run', check it with 'make test'."
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv (Python 3.11+) and install the package with its test tools

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed on the PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

db-upgrade: install ## Migrate the database (ALLEGIANCE_DATABASE_URL, default ./allegiance.db)
	$(BIN)/allegiance db upgrade

demo: db-upgrade ## Create the demo tenant (once) and print a new admin API key
	$(BIN)/allegiance demo --url http://$(HOST):$(PORT)

run: demo ## Install, migrate, load the demo and serve the API, admin app and portal on :8000
	$(BIN)/allegiance serve --host $(HOST) --port $(PORT)

serve: install ## Serve the API without touching the data
	$(BIN)/allegiance serve --host $(HOST) --port $(PORT)

test: install ## Everything CI checks: lint, types, import rules, the whole test suite
	@# -k: every check runs and reports even when an earlier one fails; the status still fails.
	@# ALLEGIANCE_REQUIRE_BROWSER=1: install Chromium first; the browser tests then must run.
	$(if $(filter 1,$(ALLEGIANCE_REQUIRE_BROWSER)),@$(MAKE) --no-print-directory install-browser)
	@$(MAKE) --no-print-directory -k lint pytest

lint: ruff mypy imports ## ruff, mypy and the import-linter contracts

ruff: install ## Lint with ruff
	$(BIN)/ruff check .

mypy: install ## Type-check (strict on kit/ and every domain.py; see pyproject.toml)
	$(BIN)/mypy src/allegiance

imports: install ## Check the dependency rules between packages (import-linter)
	$(BIN)/lint-imports

pytest: install ## Run the test suite (PYTEST_ARGS=... to pass options, WORKERS=0 for one process)
	$(BIN)/pytest $(if $(filter-out 0,$(WORKERS)),-n $(WORKERS)) --durations=20 $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench ## Run the benchmarks (prints figures and ratios)
	$(BIN)/python -m bench

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@

# T32, a periodic (weekly) job, not part of `make test`: the whole configured scope takes hours.
# Bound it with e.g. MUTATION_ARGS="--only 'allegiance.ledger.domain.*' --max-children 2".
MUTATION_ARGS ?=
mutation: $(VENV)/.installed-mutation ## Mutation testing of the ledger core (T32; score into test-figures.json)
	$(BIN)/python scripts/mutation.py $(MUTATION_ARGS)

$(VENV)/.installed-mutation: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
	@touch $@

install-browser: ## Install Debian's Chromium for the browser tests (needs root)
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

clean: ## Remove caches and build output (keeps .venv and the database)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis build dist \
		mutants
