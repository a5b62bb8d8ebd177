# Two commands do all set-up on a fresh machine:
#   make demo   - install, then run the example retraining DAG end to end (state in .demo/)
#   make test   - install, then run the whole test suite
# and, while working:
#   make test-unit - the unit tests only (tests/unit: no DAG runs, no stores, no servers; under a minute)
#   make lint      - ruff, then mypy (strict on the pure gate core)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
DEMO := $(CURDIR)/.demo
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit bench lint clean-demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv

$(STAMP): $(PY) pyproject.toml
	$(UV) pip install --python $(PY) --quiet -e '.[dev,examples]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	bash scripts/demo.sh

test: install
	$(PY) -m pytest tests

test-unit: install
	$(PY) -m pytest tests/unit -q

bench: install
	$(PY) benchmarks/parse_time.py

# mypy reads its settings (strict on the gate's pure modules) from pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy airflow_ml_provider

clean-demo:
	rm -rf $(DEMO)
