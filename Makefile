# Two commands do all the set-up on a fresh machine:
#   make run   - virtualenv, install, start services, run the main job end to end
#   make test  - virtualenv, install, run the whole test suite against real servers
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VEDFIN := $(BIN)/vedfin
# Everything below runs with the resolved DATABASE_URL / REDIS_URL / DAGSTER_HOME.
WITH_ENV = eval "$$($(VEDFIN) env)" &&

.DEFAULT_GOAL := help
.PHONY: help install test-tools manifest run test lint lint-sql pre-commit typecheck ui demo up down \
	status clean build nocodb-up nocodb-down seed-dev seed-test seed-demo seed-benchmark erd docs bench

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install the project with its dev tools

up: install ## Start (or reuse) PostgreSQL and Redis
	@$(VEDFIN) up

down: install ## Stop the embedded PostgreSQL and Redis
	@$(VEDFIN) down

status: install ## Show the services in use
	@$(VEDFIN) status

manifest: install ## Write dbt's manifest (dbt parse) for the Dagster definitions
	@$(VEDFIN) parse

run: install ## Run the main job end to end (full_pipeline on the dev scenario) and print where to look
	@$(VEDFIN) up
	@$(VEDFIN) db init
	@$(VEDFIN) parse
	@$(WITH_ENV) $(BIN)/dagster job execute -m orchestration.definitions -j full_pipeline \
		-c orchestration/run_config/dev.yaml
	@$(VEDFIN) leaderboard top -n 5
	@echo
	@echo "Done: generated the dev scenario, built every mart (tests green), published the leaderboard."
	@echo "Look at:"
	@echo "  make ui                                  # Dagster UI on http://127.0.0.1:3000 (assets, runs, sensor)"
	@echo "  eval \"\$$($(VEDFIN) env)\" && psql -c '\\dt marts.*'   # the mart tables BI tools read"
	@echo "  $(VEDFIN) leaderboard top -n 20          # the Redis leaderboard"
	@echo "  $(VEDFIN) status                         # where the servers are"

ui: install ## Dagster UI + daemon (dagster dev) on http://127.0.0.1:3000, sensor and schedule on
	@$(VEDFIN) up
	@$(VEDFIN) parse
	@$(WITH_ENV) exec $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(or $(PORT),3000)

demo: install ## The demo scenario (own database), Dagster UI and live simulator together; Ctrl-C stops
	@$(VEDFIN) up
	@$(VEDFIN) demo --port $(or $(PORT),3000)

test-tools: ## Debian chromium, chromium-driver (UI test), docker-compose (compose check), postgresql-15 (dbt suite on 15)
	@missing=""; \
	{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing="chromium chromium-driver"; \
	[ -n "$$TEST_DATABASE_URLS" ] || [ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql-15"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || \
	  missing="$$missing docker-compose"; \
	[ -z "$$missing" ] && exit 0; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian $$missing for the tests ..."; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $$missing >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	  echo "could not install $$missing: the tests that need them will be skipped"; \
	else \
	  echo "$$missing not installed (needs root apt-get): the tests that need them are skipped"; \
	fi

test: install test-tools ## Run the whole test suite (real PostgreSQL and Redis; every pre-commit hook too)
	$(BIN)/pytest

lint: install ## ruff (lint and format) and mypy
	$(BIN)/ruff check vedfin vedfin_cli seeds_gen orchestration benchmarks tests
	$(BIN)/ruff format --check vedfin vedfin_cli seeds_gen orchestration benchmarks tests
	$(BIN)/mypy

lint-sql: install ## sqlfluff on the dbt models (dbt templater, .sqlfluff)
	@$(VEDFIN) up
	@$(WITH_ENV) $(BIN)/sqlfluff lint dbt_project/models

pre-commit: install ## Every hook of .pre-commit-config.yaml on every file (what CI runs)
	@$(VEDFIN) up
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

# The roadmap's scripts. A seed refuses a non-empty app schema: RESET=1 replaces the data
# vedfin generated itself (never the platform's own app schema).
SEED = @$(VEDFIN) up && $(VEDFIN) db init && $(VEDFIN) seed $(if $(RESET),--reset) --scenario

seed-dev: install ## Generate the dev scenario (50 users, 60 days) into app; RESET=1 replaces
	$(SEED) dev

seed-test: install ## Generate the test scenario (20 users, 30 days); RESET=1 replaces
	$(SEED) test

seed-demo: install ## Generate the demo scenario (1,000 users, 120 days); RESET=1 replaces
	$(SEED) demo

seed-benchmark: install ## Generate the benchmark scenario (10,000 users, 180 days); RESET=1 replaces
	$(SEED) benchmark

build: install ## dbt build (models and data tests) on the resolved database
	@$(VEDFIN) up
	@$(VEDFIN) build

erd: install ## Mermaid ER diagrams in docs/erd/ from a clean build (dbterd)
	@$(VEDFIN) up
	@$(VEDFIN) erd --clean-build

docs: install ## dbt docs generated and served on http://127.0.0.1:8080 (PORT=...)
	@$(VEDFIN) up
	@$(VEDFIN) docs --port $(or $(PORT),8080)

COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo docker compose || echo docker-compose)

nocodb-up: ## NocoDB (compose profile admin) as the admin-browser role of VEDFIN_ENV (dev)
	@test -n "$$ADMIN_BROWSER_PASSWORD" && test -n "$$NOCODB_JWT_SECRET" || \
	  { echo "set ADMIN_BROWSER_PASSWORD and NOCODB_JWT_SECRET (never in the repository)"; exit 2; }
	$(COMPOSE) --profile admin up -d nocodb

nocodb-down: ## Stop NocoDB and its init container
	$(COMPOSE) --profile admin stop nocodb nocodb-init

bench: install ## Every benchmark, the scaling and history curves: bench/REPORT.md, report.json, scaling.png, history.png
	@$(VEDFIN) up
	@$(VEDFIN) bench all

clean: ## Remove the virtualenv and dbt build output (keeps .vedfin data)
	rm -rf $(VENV) dbt_project/target dbt_project/logs
