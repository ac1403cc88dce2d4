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
.PHONY: help install run test lint typecheck ui up down status clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

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

run: install ## Run the main job end to end and print where to look
	@$(VEDFIN) up
	@$(VEDFIN) db init
	@echo
	@echo "Done. Look at:"
	@echo "  eval \"\$$($(VEDFIN) env)\" && psql      # the app schema"
	@echo "  $(VEDFIN) status                       # where the servers are"

test: install ## Run the whole test suite (real PostgreSQL and Redis)
	$(BIN)/pytest

lint: install ## ruff and mypy
	$(BIN)/ruff check vedfin seeds_gen orchestration tests
	$(BIN)/mypy

clean: ## Remove the virtualenv and dbt build output (keeps .vedfin data)
	rm -rf $(VENV) dbt_project/target dbt_project/logs
