"""The package is a real Airflow provider, and importing it costs DAG files nothing heavy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    code = f"""
import importlib, pkgutil, sys
sys.path.insert(0, {str(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])!r})
for sub in ("operators", "sensors", "hooks"):
    pkg = importlib.import_module("airflow_ml_provider." + sub)
    for m in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"airflow_ml_provider.{{sub}}.{{m.name}}")
import breast_cancer_retrain
assert breast_cancer_retrain.dag.task_ids
print(",".join(h for h in {HEAVY!r} if h in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"heavy modules imported at parse time: {result.stdout.strip()}"
