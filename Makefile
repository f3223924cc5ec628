# The two promises of the README: `make run` runs the product, `make test` runs the tests.
# Both create .venv and install what is missing, on a fresh machine with Python 3.11+.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run start stop status test test-fast lint cli bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## the whole product on its embedded default (Ctrl-C stops it)
	$(BIN)/posturio up

start: $(STAMP)  ## the same, in the background (for scripts)
	$(BIN)/posturio up --detach

stop:  ## stop what `make start` started
	$(BIN)/posturio down

status:
	$(BIN)/posturio status

test: $(STAMP)  ## the whole suite against a real Postgres (pgvector) and Redis it starts itself
	@scripts/ensure-chromium
	@scripts/ensure-agents
	$(BIN)/ruff check posturio migrations tests bench
	$(BIN)/pytest

test-fast: $(STAMP)  ## the pure tests only (no database, server or browser): well under a minute
	$(BIN)/pytest -m "not stack" -q

lint: $(STAMP)  ## style, format, types and the import layers (.importlinter): what CI checks first
	$(BIN)/ruff check posturio migrations tests bench
	$(BIN)/ruff format --check posturio migrations tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Admin commands against the running embedded stack, e.g. make cli ARGS="tenants list"
cli: $(STAMP)
	@set -a; . ./.posturio/services.env; set +a; $(BIN)/posturio $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
