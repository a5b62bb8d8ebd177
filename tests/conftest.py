"""Test environment: a real Airflow metadata DB (SQLite), a real MLflow store (SQLite), OpenLineage
events written by the file transport. Everything lives in one temporary directory per session.

The environment is set at import time, before anything imports Airflow: the OpenLineage provider
only registers its listener when a transport is configured as Airflow loads its plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import DAGS, EVENTS, RAW_URI, ROOT, STATE

os.environ.update(
    {
        "AIRFLOW_HOME": str(STATE / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{STATE / 'airflow' / 'airflow.db'}",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-ml-tests",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(EVENTS), "append": True}
        ),
        "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT": str(STATE / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{STATE / 'mlflow' / 'mlflow.db'}",
        "AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION": str(STATE / "mlflow" / "artifacts"),
        "AIRFLOW__ML_PROVIDER__LOCK_DIR": str(STATE / "locks"),
        "BREAST_CANCER_RAW_URI": str(RAW_URI),
        "GIT_PYTHON_REFRESH": "quiet",
    }
)
for sub in ("airflow", "lineage", "data", "mlflow", "artifacts"):
    (STATE / sub).mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (``airflow db migrate``, as a user would run it)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return STATE / "airflow" / "airflow.db"


@pytest.fixture(scope="session")
def raw_data() -> Path:
    from tests.example import write_raw_dataset

    return write_raw_dataset(RAW_URI)


@pytest.fixture(scope="session")
def mlflow_client() -> Any:
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.MlflowClient()


# --- markers: what a test needs (registered in pyproject.toml) -------------------------------------------
# ``dag`` and ``spec`` are set in the test modules; ``deployment`` by directory; ``postgres`` by fixture.
DEPLOYMENT_TESTS = ("tests/deployment/", "tests/reproduce/test_reproduce_remote.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(ROOT).as_posix()
        if where.startswith(DEPLOYMENT_TESTS):
            item.add_marker(pytest.mark.deployment)
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
