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
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags_examples"
STATE = Path(tempfile.mkdtemp(prefix="airflow-ml-tests-"))
EVENTS = STATE / "lineage" / "events.jsonl"
RAW_URI = STATE / "data" / "breast_cancer.parquet"

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
        "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION": str(STATE / "mlflow" / "artifacts"),
        "AIRFLOW_ML_LOCK_DIR": str(STATE / "locks"),
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


def read_events() -> list[dict[str, Any]]:
    if not EVENTS.exists():
        return []
    return [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    """Run a DAG from the DAGs folder with ``dag.test()``, parsed as ``airflow dags test`` parses it (a
    BundleDagBag, which puts the DAGs folder on ``sys.path``); returns the finished DagRun."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {DAGS}"
    return dag.test(run_conf=conf or {})
