"""Which settings are warned about once tasks may run on several workers (pure: ``deployment_warnings``)."""

from __future__ import annotations

import pytest

from airflow_ml_provider.deployment import DeploymentWarning, deployment_warnings, executor_classes

ROOT = "/home/airflow/airflow/ml_artifacts"


@pytest.mark.parametrize(
    ("configured", "classes"),
    [
        (None, ("LocalExecutor",)),
        ("", ("LocalExecutor",)),
        ("CeleryExecutor", ("CeleryExecutor",)),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", ("CeleryExecutor",)),
        ("LocalExecutor, KubernetesExecutor", ("LocalExecutor", "KubernetesExecutor")),
        ("fast:my_company.executors.FastExecutor,LocalExecutor", ("FastExecutor", "LocalExecutor")),
        ("LocalExecutor;team1=CeleryExecutor", ("LocalExecutor", "CeleryExecutor")),
        ("=LocalExecutor", ("LocalExecutor",)),
    ],
)
def test_executor_setting_is_read_as_airflow_reads_it(configured: str | None, classes: tuple[str, ...]) -> None:
    assert executor_classes(configured) == classes


def checks(found: list[DeploymentWarning]) -> list[str]:
    return [w.check for w in found]


# --- the artifact root --------------------------------------------------------------------------


@pytest.mark.parametrize("executor", [None, "LocalExecutor", "SequentialExecutor"])
def test_one_machine_executors_are_never_warned_about(executor: str | None) -> None:
    assert deployment_warnings(executor, default_artifact_root=ROOT, file_lock=True) == []


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor",
        "LocalExecutor,CeleryExecutor",  # tasks routed to Celery read what LocalExecutor tasks wrote
    ],
)
def test_default_artifact_root_under_a_remote_executor_is_warned_about(executor: str) -> None:
    [warning] = deployment_warnings(executor, default_artifact_root=ROOT)
    assert warning.check == "artifact_root"
    message = warning.message
    assert "[ml_provider] artifact_root is not set" in message and ROOT in message
    assert "a directory of this worker" in message and "will not find them on another worker" in message
    # what to set, where, and to what
    assert "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT" in message and "in every worker's environment" in message
    assert "mounts at the same path" in message and "s3://bucket/prefix" in message
    assert executor_classes(executor)[-1] in message


def test_an_artifact_root_that_is_set_is_taken_at_its_word() -> None:
    """A local directory the user set is one they say every worker mounts (nothing can check that)."""
    assert deployment_warnings("CeleryExecutor", default_artifact_root=None) == []


def test_dag_test_runs_in_one_process_whatever_the_executor() -> None:
    found = deployment_warnings(
        "CeleryExecutor", in_process=True, default_artifact_root=ROOT, file_lock=True, registry_uri="sqlite:///m.db"
    )
    assert found == []


# --- the promotion lock ---------------------------------------------------------------------------


def test_file_lock_under_a_remote_executor_is_warned_about() -> None:
    [warning] = deployment_warnings("CeleryExecutor", file_lock=True, registry_uri="sqlite:////shared/mlflow.db")
    assert warning.check == "promotion_lock"
    message = warning.message
    assert "file lock, which holds on this machine only" in message and "CeleryExecutor" in message
    assert "both move the alias" in message
    assert "[ml_provider] lock_uri (AIRFLOW__ML_PROVIDER__LOCK_URI)" in message
    assert "in every worker's environment" in message and "PostgreSQL" in message


def test_advisory_lock_is_never_warned_about() -> None:
    assert deployment_warnings("CeleryExecutor", file_lock=False, registry_uri="https://mlflow.example.com") == []


def test_file_lock_against_an_mlflow_server_is_warned_about_even_on_one_machine() -> None:
    """Other machines (another Airflow, the airflow-ml CLI on a laptop) may promote against the same server."""
    [warning] = deployment_warnings(
        "LocalExecutor", file_lock=True, registry_uri="https://bob:s3cret@mlflow.example.com"
    )
    assert warning.check == "promotion_lock"
    assert "the MLflow registry is a server (https://mlflow.example.com)" in warning.message
    assert "s3cret" not in warning.message and "bob" not in warning.message
    assert "[core] executor" not in warning.message  # not the reason here


def test_file_lock_on_one_machine_with_a_local_registry_is_fine() -> None:
    assert deployment_warnings("LocalExecutor", file_lock=True, registry_uri="sqlite:///mlflow.db") == []


def test_both_reasons_are_given_and_each_check_once() -> None:
    found = deployment_warnings(
        "CeleryExecutor", default_artifact_root=ROOT, file_lock=True, registry_uri="http://mlflow:5000"
    )
    assert checks(found) == ["artifact_root", "promotion_lock"]
    lock = found[1].message
    assert "CeleryExecutor" in lock and "server (http://mlflow:5000)" in lock
