# tagwarden — `make run` serves on :4002 with the embedded database; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-deps lint format db-check bench demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml agent/pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The device agent is its own distribution (agent/); the tests drive it, the server never imports it.
	$(BIN)/pip install --quiet -e ./agent
	touch $(STAMP)

install: $(STAMP) ## create the virtual environment; install tagwarden, its dev tools and the agent

run: $(STAMP) ## migrate the embedded database and serve on port 4002
	$(BIN)/tagwarden db upgrade
	$(BIN)/tagwarden serve

test-deps: $(STAMP) ## install the system packages the tests use (docker-registry, chromium, docker.io, podman)
	./scripts/install-test-deps.sh

test: test-deps ## run the whole suite (unit, integration on SQLite and PostgreSQL, browser)
	# Two processes, a test file each at a time (module fixtures are built once): see docs/testing.md.
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP) ## ruff (lint and format), mypy --strict and import-linter (no package cycles)
	$(BIN)/ruff check src tests bench agent/src
	$(BIN)/ruff format --check src tests bench agent/src
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests bench agent/src
	$(BIN)/ruff format src tests bench agent/src

db-check: $(STAMP) ## fail if the models drifted from the migrations (on $$TAGWARDEN_DATABASE_URL)
	$(BIN)/tagwarden db upgrade
	$(BIN)/tagwarden db check

demo: $(STAMP) ## fake registry + server + 20 simulated devices: discovery → approval → rollout
	$(BIN)/tagwarden demo

# The benchmarks create (and drop) their own databases on this PostgreSQL server.
TAGWARDEN_BENCH_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
export TAGWARDEN_BENCH_POSTGRES_URL

bench: $(STAMP) ## run the benchmarks under bench/ (figures and ratios, no pass/fail)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean: ## remove the virtual environment, caches and the embedded database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tagwarden.db tagwarden.db-*
