"""The installed package as Airflow sees it (providers list, config list); importing it costs DAG files nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_ml_provider import conf

HEAVY = ("mlflow", "great_expectations", "pandas", "pyarrow", "sklearn", "openlineage.client", "numpy")


def test_registered_with_airflow_and_mlflow_connection_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-ml-provider" in manager.providers
    hooks = manager.hooks
    assert hooks["mlflow"] is not None
    assert hooks["mlflow"].hook_class_name == "airflow_ml_provider.hooks.mlflow.MlflowHook"
    widgets = manager.connection_form_widgets
    for field in ("tracking_uri", "registry_uri", "default_experiment", "artifact_location"):
        assert f"extra__mlflow__{field}" in widgets, field


def test_airflow_providers_list_shows_it() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=os.environ,
        check=True,
    ).stdout
    assert "airflow-ml-provider" in {p["package_name"] for p in json.loads(out)}


def test_importing_operators_sensors_hooks_and_the_example_dag_imports_nothing_heavy() -> None:
    """The example DAG is parsed as Airflow parses it (a BundleDagBag over the DAGs folder)."""
    code = f"""
import importlib, pkgutil, sys
from pathlib import Path
for sub in ("operators", "sensors", "hooks"):
    pkg = importlib.import_module("airflow_ml_provider." + sub)
    for m in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"airflow_ml_provider.{{sub}}.{{m.name}}")
from airflow.dag_processing.dagbag import BundleDagBag
folder = Path({str(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])!r})
bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
assert not bag.import_errors, bag.import_errors
assert bag.dags["breast_cancer_retrain"].task_ids
print("HEAVY=" + ",".join(h for h in {HEAVY!r} if h in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr
    heavy = result.stdout.strip().splitlines()[-1]  # Airflow's DagBag logs to stdout before it
    assert heavy == "HEAVY=", f"heavy modules imported at parse time: {heavy}"


def test_connection_form_asks_for_the_whole_tracking_uri() -> None:
    """The hook uses the Tracking URI (or a whole URI in host) and never builds one from host/port/schema,
    so the form shows none of those three: what a user can fill in is what the hook reads."""
    from airflow_ml_provider.get_provider_info import get_provider_info

    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = conn_type["ui-field-behaviour"]
    assert {"host", "port", "schema"} <= set(behaviour["hidden-fields"])
    assert "host" not in behaviour.get("relabeling", {})
    tracking = conn_type["conn-fields"]["tracking_uri"]
    assert tracking["schema"]["type"] == "string", "the Tracking URI is required"
    assert "http://mlflow:5000" in tracking["description"]
    for extra in ("http_request_timeout", "http_request_max_retries"):
        assert conn_type["conn-fields"][extra]["schema"]["type"] == ["integer", "null"]


def test_airflow_renders_the_connection_form_from_the_provider_info() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["mlflow"]
    assert {"host", "port", "schema"} <= set(behaviour["hidden_fields"])
    widgets = manager.connection_form_widgets
    for field in ("http_request_timeout", "http_request_max_retries", "http_request_backoff_factor"):
        assert f"extra__mlflow__{field}" in widgets, field


def test_airflow_config_list_shows_every_option(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__ML_PROVIDER__LOCK_DIR": "/srv/locks"}
    airflow = Path(sys.executable).parent / "airflow"
    listed = subprocess.run(
        [str(airflow), "config", "list", "--section", "ml_provider", "--include-descriptions", "--show-values"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    ).stdout
    for key in conf.OPTIONS:
        assert f"{key} =" in listed, listed
    assert "lock_dir = /srv/locks" in listed, listed
    assert "Directory of the promotion file locks" in listed
