# Two commands do all set-up on a fresh machine:
#   make demo   - install, then run the example retraining DAG end to end (state in .demo/)
#   make test   - install, then run the whole test suite
# and, while working:
#   make test-unit - the unit tests only (tests/unit: no DAG runs, no stores, no servers; under a minute)
#   make lint      - ruff, then mypy (strict on the pure gate core)
#   make deploy    - docker-compose.yaml's topology on this machine without Docker (deploy/native.py):
#                    MLflow server, Airflow on Celery with two workers, PostgreSQL and Redis of the machine
#   make deploy-down [PURGE=1] - stop exactly what `make deploy` started (PURGE=1: drop its databases and state)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
DEMO := $(CURDIR)/.demo
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit bench lint clean-demo deploy deploy-down

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet uv

# Bytecode is compiled once here: uv does not compile, and with PYTHONDONTWRITEBYTECODE set (as on CI)
# every process would otherwise recompile every module it imports.
$(STAMP): $(PY) pyproject.toml
	$(UV) pip install --python $(PY) --quiet -e '.[dev,examples]'
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') airflow_ml_provider
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

deploy: install
	$(PY) deploy/native.py up $(DEPLOY_ARGS)

deploy-down:
	$(PY) deploy/native.py down $(if $(PURGE),--purge)

clean-demo:
	rm -rf $(DEMO)
