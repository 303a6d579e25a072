# Steady — `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: install
install: $(BIN)/.installed ## Create .venv and install Steady with its dev tools

.PHONY: run
run: install ## Run Steady all-in-one on http://127.0.0.1:8000 (SQLite, outbox: no accounts needed)
	$(BIN)/steady run

.PHONY: test
test: install ## Run the tests (SQLite and eager Celery; server-backed tests skip unless configured)
	@if [ -z "$$STEADY_TEST_POSTGRES_URL$$STEADY_TEST_REDIS_URL" ]; then \
	  echo "note: STEADY_TEST_POSTGRES_URL / STEADY_TEST_REDIS_URL unset: PostgreSQL, Redis and Celery-worker tests are skipped (.ci/run runs them)"; fi
	$(BIN)/python -m pytest -m "not faults" $(PYTEST_ARGS)

.PHONY: test-faults
test-faults: install ## Crash-safety and load tests (real workers, kill -9, server restarts); needs PostgreSQL and Redis
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

.PHONY: lint
lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: fmt
fmt: install ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: demo
demo: install ## Print the simulated fortnight
	$(BIN)/steady demo

.PHONY: clean
clean: ## Remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
