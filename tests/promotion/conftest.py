"""Fixtures for the promotion tests: real MLflow stores (SQLite, and PostgreSQL on the local server),
model versions that passed the gate the way ModelGateSensor records it, and eight racing processes.

PostgreSQL must be reachable at 127.0.0.1:5432 (trust auth, user postgres). If it is not, the
session fixture tries to start the local cluster with ``pg_ctlcluster``; if it still cannot connect
the tests that need it are skipped with the reason on a developer's machine, and FAIL in CI
(``AIRFLOW_ML_TESTS_STRICT=1``, set by ``.ci/run``), where a skipped concurrency test would hide exactly
what it is for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.promotion._support import VERSIONS, Store

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"

# --- PostgreSQL ----------------------------------------------------------------------------------


def _pg_connect(dbname: str = "postgres") -> Any:
    import psycopg2

    return psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)


def _start_local_postgres() -> tuple[bool, str]:
    """Try ``pg_ctlcluster <version> main start`` for each installed version: (any started, what happened)."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return False, "no cluster configured under /etc/postgresql"
    if shutil.which("pg_ctlcluster") is None:
        return False, "pg_ctlcluster is not installed"
    notes, started = [], False
    for version in versions:
        done = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        started = started or done.returncode == 0
        notes.append(f"pg_ctlcluster {version} main start -> exit {done.returncode} {done.stderr.strip()}")
    return started, "; ".join(notes)


@pytest.fixture(scope="session")
def postgres_server() -> None:
    """The local PostgreSQL server, started if it is down; skipped (failed in CI) if it cannot be reached."""
    import psycopg2

    from tests.requirements import requirement_missing

    try:
        _pg_connect().close()
        return
    except psycopg2.OperationalError as first:
        first_error = str(first).strip()
    started, notes = _start_local_postgres()
    deadline = time.monotonic() + (60 if started else 0)
    while True:
        try:
            _pg_connect().close()
            return
        except psycopg2.OperationalError as e:
            if time.monotonic() >= deadline:
                requirement_missing(
                    f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER!r} ({first_error}); "
                    f"starting it did not help ({notes}); last error: {str(e).strip()}",
                    "The PostgreSQL lock and store tests need a local server with trust auth for user postgres: "
                    "start it with `pg_ctlcluster --skip-systemctl-redirect <version> main start`.",
                )
            time.sleep(1)


@pytest.fixture(scope="session")
def postgres_uri(postgres_server: None) -> Iterator[str]:
    """A fresh database for this session, dropped at the end."""
    name = f"airflow_ml_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- stores --------------------------------------------------------------------------------------


def _open_store(kind: str, uri: str, artifacts: Path) -> Store:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # first use creates the schema
    experiment_id = client.create_experiment(f"promotion-{uuid.uuid4().hex[:8]}", artifact_location=str(artifacts))
    client.search_registered_models(max_results=1)  # the registry store too, before any worker opens it
    return Store(kind, uri, client, experiment_id)


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("promotion-sqlite")
    return _open_store("sqlite", f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")


@pytest.fixture(scope="session")
def postgres_store(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("promotion-postgres")
    return _open_store("postgresql", postgres_uri, root / "artifacts")


@pytest.fixture(scope="session")
def session_store(mlflow_client: Any) -> Store:
    """The session's MLflow store from tests/conftest.py (MLFLOW_TRACKING_URI): what operators and the CLI use."""
    uri = os.environ["MLFLOW_TRACKING_URI"]
    from airflow_ml_provider import conf

    experiment = mlflow_client.get_experiment_by_name("promotion-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow_client.create_experiment("promotion-tests", artifact_location=conf.get("mlflow_artifact_location"))
    )
    return Store("sqlite", uri, mlflow_client, experiment_id)


# --- gated model versions ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight tiny scikit-learn models saved in MLflow format, each with different bytes."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    y = np.array([0, 0, 1, 1])
    dirs = []
    for i in range(VERSIONS):
        path = root / f"model-{i + 1}"
        model = LogisticRegression(C=1.0 + i).fit(x, y)
        mlflow.sklearn.save_model(model, str(path), pip_requirements=[], serialization_format="cloudpickle")
        dirs.append(path)
    return dirs


@pytest.fixture(scope="module")
def race_pool() -> Iterator[Any]:
    """Eight spawned worker processes, started once for every race in a test module."""
    from tests.promotion._race import RacePool

    started = time.monotonic()
    pool = RacePool()
    print(f"\n[race pool: {len(pool.processes)} spawned workers ready in {time.monotonic() - started:.1f}s]")
    try:
        yield pool
    finally:
        pool.close()
