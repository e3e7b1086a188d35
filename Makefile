# The README's two commands (`make demo`, `make test`) are the whole set-up on a fresh machine:
# each installs the project into .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install services demo test lint bench bench-10m crash-soak soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	touch $(STAMP)

services:
	scripts/ensure-services

demo: install
	$(BIN)/sync-engine demo

test: install services
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

lint: install
	$(BIN)/ruff check sync_engine tests benchmarks
	$(BIN)/ruff format --check sync_engine tests benchmarks
	$(BIN)/mypy

# Each benchmark is a module (python -m benchmarks.bench_x); sizes: see benchmarks/README.md.
bench: install
	@for b in benchmarks/bench_*.py; do \
		echo "== $$b"; $(BIN)/python -m benchmarks.$$(basename $$b .py) || exit 1; \
	done

# Figure 1 at 10M contacts: ~2 GB of generated files and a few minutes.
bench-10m: install
	$(BIN)/python -m benchmarks.bench_plan --contacts 10000000 --repeat 1 --row-contacts 0 --no-peer

# The SIGKILL loop of the test suite, longer: 40 kills at random points of a 50k-contact run.
crash-soak: install services
	SYNC_ENGINE_KILL_ROUNDS=40 SYNC_ENGINE_KILL_BUDGET=600 SYNC_ENGINE_KILL_CONTACTS=50000 \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider --timeout 900 \
		tests/integration/test_cli_crash.py -k sigkill

# Issue #8: a 200,000-contact mirror sync against an emulator failing in every way it can
# (each kind at least once, plus 10% of all calls at random); must converge. ~30 s.
soak: install
	$(BIN)/python -m benchmarks.soak --contacts 200000 --faults 0.1

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .coverage build *.egg-info
