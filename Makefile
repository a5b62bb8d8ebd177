# Two commands do all set-up on a fresh machine:
#   make demo   - install, then run the example retraining DAG end to end (state in .demo/)
#   make test   - install, then run the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
DEMO := $(CURDIR)/.demo
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean-demo

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

bench: install
	$(PY) benchmarks/parse_time.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy airflow_ml_provider --ignore-missing-imports

clean-demo:
	rm -rf $(DEMO)
