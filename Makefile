# Two commands do everything on a fresh machine (Python 3.11+ and Java 17+):
#   make demo   installs, runs one night on CDNOW, looks customers up over HTTP
#   make test   installs, lints, type-checks and runs the tests
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATE  ?= 1998-02-01
PYTEST_ARGS ?= -m "not slow"

.PHONY: setup demo test lint typecheck bench serve clean

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh

setup: $(STAMP)

demo: setup
	$(VENV)/bin/lakescore demo --date $(DATE)

serve: setup
	$(VENV)/bin/lakescore serve

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

# One night on 1M synthetic customers with the default settings (LAKESCORE_SCALE_CUSTOMERS=N
# for another size); figures in data/scale/run-<N>/figures.json.
.PHONY: test-scale
test-scale: setup
	$(PY) -m pytest -m slow tests/e2e/test_night_at_scale.py

bench: setup
	$(PY) -m bench

clean:
	rm -rf data spark-warehouse metastore_db

# Fault, load and hostile-input scenarios with a figures table (README: Reliability suite).
.PHONY: reliability reliability-fast
reliability: setup
	$(PY) -m tests.reliability.run

reliability-fast: setup
	$(PY) -m tests.reliability.run --fast
