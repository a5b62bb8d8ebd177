"""MlflowHook: where MLflow lives, from an Airflow connection or the environment.

Connections are given the way a deployment gives them outside the metadata DB: ``AIRFLOW_CONN_<ID>``
environment variables (JSON form). Outside a task (no supervisor comms), the Task SDK looks
connections up in its fallback chain, which is the environment-variables backend plus any
configured secrets backend; it needs no metadata DB and no API server. So these tests run without
either, and a missing connection surfaces as ``AirflowNotFoundException``, which the hook turns into
the ``MLFLOW_TRACKING_URI`` fallback.

``get_client`` points MLflow's process-global tracking/registry URIs (and their environment
variables) at the connection; the ``isolated_mlflow`` fixture puts them back after each test.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.hooks.mlflow import ARTIFACT_LOCATION_ENV, MlflowHook, MlflowSettings

ENV_TO_ISOLATE = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    ARTIFACT_LOCATION_ENV,
)


@pytest.fixture(autouse=True)
def isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test (or the hook) does to MLflow's globals and env vars is undone afterwards."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    for name in ENV_TO_ISOLATE:  # monkeypatch restores each of these, even if the hook sets them
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    tracking_before = tracking_utils._tracking_uri
    yield
    mlflow.set_tracking_uri(tracking_before)  # type: ignore[arg-type]


#: tests/conftest.py's store, read before the fixture below hides MLFLOW_TRACKING_URI from each test.
SESSION_TRACKING_URI = os.environ["MLFLOW_TRACKING_URI"]


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


# --- connection -> settings ---------------------------------------------------------------------------


def test_json_connection_with_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(
        monkeypatch,
        "mlflow_json",
        extra={
            "tracking_uri": "http://mlflow.internal:5000",
            "registry_uri": "postgresql://registry/db",
            "default_experiment": "churn",
            "artifact_location": "s3://bucket/mlflow",
        },
    )
    assert MlflowHook("mlflow_json").settings == MlflowSettings(
        tracking_uri="http://mlflow.internal:5000",
        registry_uri="postgresql://registry/db",
        default_experiment="churn",
        artifact_location="s3://bucket/mlflow",
    )


def test_legacy_prefixed_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(
        monkeypatch,
        "mlflow_legacy",
        extra={"extra__mlflow__tracking_uri": "http://old:5000", "extra__mlflow__default_experiment": "e"},
    )
    settings = MlflowHook("mlflow_legacy").settings
    assert (settings.tracking_uri, settings.default_experiment) == ("http://old:5000", "e")


def test_tracking_uri_wins_over_host(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "mlflow_both", host="ignored", port=1, extra={"tracking_uri": "http://used:5000"})
    assert MlflowHook("mlflow_both").settings.tracking_uri == "http://used:5000"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "mlflow.internal", "port": 5000}, "http://mlflow.internal:5000"),
        ({"host": "mlflow.internal"}, "http://mlflow.internal"),
        ({"host": "mlflow.internal", "port": 443, "schema": "https"}, "https://mlflow.internal:443"),
        ({"host": "https://mlflow.example.com", "port": 8443}, "https://mlflow.example.com:8443"),
    ],
    ids=["host-port", "host", "schema", "host-with-scheme"],
)
def test_host_and_port_form(monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], expected: str) -> None:
    connection(monkeypatch, "mlflow_hp", **fields)
    settings = MlflowHook("mlflow_hp").settings
    assert settings.tracking_uri == expected
    assert settings.registry_uri is None and settings.default_experiment is None


def test_artifact_location_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "mlflow_noloc", extra={"tracking_uri": "http://m:5000"})
    monkeypatch.setenv(ARTIFACT_LOCATION_ENV, "/srv/mlflow-artifacts")
    assert MlflowHook("mlflow_noloc").settings.artifact_location == "/srv/mlflow-artifacts"


def test_connection_without_uri_or_host_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "mlflow_empty", extra={"default_experiment": "e"})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/not-used.db")  # the connection exists: no fallback
    with pytest.raises(ValueError) as excinfo:
        _ = MlflowHook("mlflow_empty").settings
    message = str(excinfo.value)
    assert "'mlflow_empty'" in message and "Tracking URI" in message and "host" in message


# --- no connection ------------------------------------------------------------------------------------


def test_missing_connection_falls_back_to_mlflow_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_ABSENT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/fallback.db")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////tmp/registry.db")
    monkeypatch.setenv(ARTIFACT_LOCATION_ENV, "/tmp/artifacts")
    assert MlflowHook("mlflow_absent").settings == MlflowSettings(
        "sqlite:////tmp/fallback.db", "sqlite:////tmp/registry.db", None, "/tmp/artifacts"
    )


def test_neither_connection_nor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_NOWHERE", raising=False)
    with pytest.raises(ValueError) as excinfo:
        _ = MlflowHook("mlflow_nowhere").settings
    message = str(excinfo.value)
    assert "'mlflow_nowhere'" in message and "MLFLOW_TRACKING_URI" in message
    assert "type 'mlflow'" in message  # says how to fix it: a connection or the variable


def test_get_connection_outside_a_task_reads_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``get_connection`` needs outside a task: only the env-var backend (no DB, no supervisor)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.execution_time import task_runner

    assert getattr(task_runner, "SUPERVISOR_COMMS", None) is None  # not inside a task here
    connection(monkeypatch, "mlflow_env_only", host="h", login="user", password="secret-pw", extra={"x": 1})
    conn = MlflowHook.get_connection("mlflow_env_only")
    assert (conn.conn_type, conn.host, conn.login, conn.extra_dejson) == ("mlflow", "h", "user", {"x": 1})
    with pytest.raises(AirflowNotFoundException):
        MlflowHook.get_connection("mlflow_defined_nowhere")


# --- operators' connection choice ---------------------------------------------------------------------


def test_operator_connection_default_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ml_provider.operators.base import resolve_hook

    monkeypatch.delenv("AIRFLOW__ML_PROVIDER__MLFLOW_CONN_ID", raising=False)
    assert resolve_hook(None).mlflow_conn_id == "mlflow_default"
    assert resolve_hook("explicit").mlflow_conn_id == "explicit"
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__MLFLOW_CONN_ID", "from_config")
    assert resolve_hook(None).mlflow_conn_id == "from_config"
    assert resolve_hook("explicit").mlflow_conn_id == "explicit"


# --- credentials and the client -------------------------------------------------------------------------


def test_login_becomes_basic_auth_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "mlflow_auth", host="mlflow.internal", port=5000, login="alice", password="pw-alice-1")
    assert MlflowHook("mlflow_auth").settings.tracking_uri
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-alice-1"


def test_credentials_do_not_leak_to_another_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two connections in one process (dag.test() runs every task in one): the second, which has no
    credentials, must not send the first one's to its server."""
    connection(monkeypatch, "mlflow_private", host="private.internal", login="alice", password="pw-alice-1")
    connection(monkeypatch, "mlflow_public", host="public.example.com")
    assert MlflowHook("mlflow_private").settings.tracking_uri
    assert MlflowHook("mlflow_public").settings.tracking_uri
    username, password = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    assert (username, password) == (None, None), "mlflow_private's credentials are still in the environment"


def test_get_client_and_experiment_with_artifact_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracking = SESSION_TRACKING_URI  # the session's SQLite store (tests/conftest.py): no second migration
    connection(
        monkeypatch,
        "mlflow_local",
        extra={"tracking_uri": tracking, "artifact_location": str(tmp_path / "artifacts")},
    )
    hook = MlflowHook("mlflow_local")
    client = hook.get_client()
    assert client is hook.get_client() and client.tracking_uri == tracking
    name = f"hook-test-{uuid.uuid4().hex[:8]}"
    experiment_id = hook.get_or_create_experiment(name)
    assert hook.get_or_create_experiment(name) == experiment_id
    location = client.get_experiment(experiment_id).artifact_location
    assert location.endswith(str(tmp_path / "artifacts"))
    assert hook.test_connection() == (True, f"Connected to MLflow at {tracking}")


def test_unreachable_server_fails_test_connection_with_the_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    connection(monkeypatch, "mlflow_down", host="127.0.0.1", port=9)  # discard port: nothing listens
    ok, message = MlflowHook("mlflow_down").test_connection()
    assert ok is False and "http://127.0.0.1:9" in message


def test_registry_of_one_connection_does_not_leak_to_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection A has a separate registry, B has none (its registry is its tracking store). After A's
    client was made, B's client and the fluent API B's operators use (``log_model``) must use B's store."""
    import mlflow

    a_registry = "http://registry-a.invalid:5000"  # clients do not connect until used
    b_tracking = "http://tracking-b.invalid:5000"
    connection(
        monkeypatch,
        "mlflow_a",
        extra={"tracking_uri": "http://tracking-a.invalid:5000", "registry_uri": a_registry},
    )
    connection(monkeypatch, "mlflow_b", extra={"tracking_uri": b_tracking})

    MlflowHook("mlflow_a").get_client()
    b_client = MlflowHook("mlflow_b").get_client()

    assert mlflow.get_registry_uri() == b_tracking
    assert b_client._registry_uri == b_tracking


def test_registry_set_for_one_connection_is_not_read_back_as_the_users_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mlflow.set_registry_uri() exports MLFLOW_REGISTRY_URI; the environment fallback of a later hook
    (no connection) must not take that for a registry the user configured."""
    a_registry = "http://registry-a.invalid:5000"
    connection(
        monkeypatch, "mlflow_a", extra={"tracking_uri": "http://tracking-a.invalid:5000", "registry_uri": a_registry}
    )
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    MlflowHook("mlflow_a").get_client()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking-b.invalid:5000")

    settings = MlflowHook("no_such_connection").settings

    assert settings.tracking_uri == "http://tracking-b.invalid:5000"
    assert settings.registry_uri is None

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://users-own-registry.invalid:5000")
    assert MlflowHook("no_such_connection").settings.registry_uri == "http://users-own-registry.invalid:5000"
