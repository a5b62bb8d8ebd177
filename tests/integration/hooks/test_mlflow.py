"""MlflowHook: where MLflow lives, from an Airflow connection or the environment.

Connections are given the way a deployment gives them outside the metadata DB: ``AIRFLOW_CONN_<ID>``
environment variables (JSON form). Outside a task (no supervisor comms), the Task SDK looks
connections up in its fallback chain, which is the environment-variables backend plus any
configured secrets backend; it needs no metadata DB and no API server. So these tests run without
either, and a missing connection surfaces as ``AirflowNotFoundException``, which the hook turns into
the ``MLFLOW_TRACKING_URI`` fallback.

The hook leaves MLflow's process-global URIs and the environment alone (test_mlflow_isolation.py);
the ``isolated_mlflow`` fixture still puts them back after each test, so a failure cannot leak.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.conf import OPTIONS
from airflow_ml_provider.hooks.mlflow import (
    HTTP_SETTINGS,
    MlflowConnectionError,
    MlflowHook,
    MlflowSettings,
)

ARTIFACT_LOCATION_ENV = OPTIONS["mlflow_artifact_location"].env_var  # AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION
ENV_TO_ISOLATE = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    ARTIFACT_LOCATION_ENV,
    "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION",  # its deprecated name
    *(env for _, env, _ in HTTP_SETTINGS),
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


@pytest.mark.parametrize("uri", ["https://mlflow.example.com:8443", "http://mlflow.internal", "sqlite:////srv/m.db"])
def test_a_whole_uri_in_host_is_the_tracking_uri(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    connection(monkeypatch, "mlflow_host_uri", host=uri)
    settings = MlflowHook("mlflow_host_uri").settings
    assert settings.tracking_uri == uri
    assert settings.registry_uri is None and settings.default_experiment is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"host": "mlflow.internal"}, "host='mlflow.internal'"),  # was http://mlflow.internal: port 80, not 5000
        ({"host": "mlflow.internal", "port": 5000}, "port=5000"),
        ({"host": "mlflow.internal", "port": 443, "schema": "https"}, "schema='https'"),
        ({"host": "https://mlflow.example.com", "port": 8443}, "port=8443"),
    ],
    ids=["host", "host-port", "schema", "uri-and-port"],
)
def test_host_port_schema_are_refused_with_how_to_set_the_tracking_uri(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], named: str
) -> None:
    """The form offers only the Tracking URI; the hook never guesses a URI (scheme, port) from the other fields."""
    connection(monkeypatch, "mlflow_hp", **fields)
    with pytest.raises(ValueError) as excinfo:
        _ = MlflowHook("mlflow_hp").settings
    message = str(excinfo.value)
    assert "'mlflow_hp'" in message and named in message
    assert "Tracking URI" in message and "AIRFLOW_CONN_MLFLOW_HP=" in message and "tracking_uri" in message


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
    assert "'mlflow_empty'" in message and "has no tracking URI" in message and "Tracking URI" in message


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


def test_login_becomes_this_connections_credentials_not_the_environments(monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials stay with the hook (what its requests send: test_mlflow_isolation.py)."""
    connection(
        monkeypatch, "mlflow_auth", login="alice", password="pw-alice-1", extra={"tracking_uri": "http://mlflow:5000"}
    )
    hook = MlflowHook("mlflow_auth")
    assert hook.settings.tracking_uri
    assert hook._credentials is not None and hook._credentials.authorization is not None
    assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} & set(os.environ)


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
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's own variable is honoured
    connection(monkeypatch, "mlflow_down", extra={"tracking_uri": "http://127.0.0.1:9"})  # discard port: closed
    ok, message = MlflowHook("mlflow_down").test_connection()
    assert ok is False and "http://127.0.0.1:9" in message and "'mlflow_down'" in message
    assert "gave up after 1 attempt(s)" in message
    assert message.count("Cannot reach MLflow") == 1, message


def test_registry_of_one_connection_does_not_leak_to_another(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Connection A has a separate registry, B has none (its registry is its tracking store). After A's
    client was made, B's client must use B's store, and MLflow's global registry is nobody's."""
    from mlflow.tracking._model_registry import utils as registry_utils

    # SQLite clients open nothing until used (an HTTP client's server is asked for once by get_client).
    a_registry = f"sqlite:///{tmp_path / 'registry-a.db'}"
    b_tracking = f"sqlite:///{tmp_path / 'tracking-b.db'}"
    connection(
        monkeypatch,
        "mlflow_a",
        extra={"tracking_uri": f"sqlite:///{tmp_path / 'tracking-a.db'}", "registry_uri": a_registry},
    )
    connection(monkeypatch, "mlflow_b", extra={"tracking_uri": b_tracking})

    MlflowHook("mlflow_a").get_client()
    b_client = MlflowHook("mlflow_b").get_client()

    assert registry_utils._registry_uri is None
    assert b_client._registry_uri == b_tracking


def test_registry_set_for_one_connection_is_not_read_back_as_the_users_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """mlflow.set_registry_uri() exports MLFLOW_REGISTRY_URI; the environment fallback of a later hook
    (no connection) must not take that for a registry the user configured."""
    a_registry = f"sqlite:///{tmp_path / 'registry-a.db'}"
    connection(
        monkeypatch, "mlflow_a", extra={"tracking_uri": f"sqlite:///{tmp_path / 'a.db'}", "registry_uri": a_registry}
    )
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    MlflowHook("mlflow_a").get_client()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking-b.invalid:5000")

    settings = MlflowHook("no_such_connection").settings

    assert settings.tracking_uri == "http://tracking-b.invalid:5000"
    assert settings.registry_uri is None

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://users-own-registry.invalid:5000")
    assert MlflowHook("no_such_connection").settings.registry_uri == "http://users-own-registry.invalid:5000"


# --- bounded HTTP: an unreachable server fails fast and says where ---------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_bounds_from_extras_else_the_users_variables_else_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch, "mlflow_plain", extra={"tracking_uri": "http://m:5000"})
    plain = MlflowHook("mlflow_plain").settings
    assert (plain.http_request_timeout, plain.http_request_max_retries, plain.http_request_backoff_factor) == (10, 2, 1)

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    assert MlflowHook("mlflow_plain").settings.http_request_max_retries == 5

    connection(
        monkeypatch,
        "mlflow_bounded",
        extra={"tracking_uri": "http://m:5000", "http_request_timeout": "3", "http_request_max_retries": 0},
    )
    bounded = MlflowHook("mlflow_bounded").settings
    assert (bounded.http_request_timeout, bounded.http_request_max_retries) == (3, 0)


@pytest.mark.parametrize(("key", "value"), [("http_request_timeout", 0), ("http_request_max_retries", "many")])
def test_a_bad_http_bound_names_the_extra_and_the_connection(
    monkeypatch: pytest.MonkeyPatch, key: str, value: Any
) -> None:
    connection(monkeypatch, "mlflow_badbound", extra={"tracking_uri": "http://m:5000", key: value})
    with pytest.raises(ValueError) as excinfo:
        _ = MlflowHook("mlflow_badbound").settings
    assert f"extra '{key}' of connection 'mlflow_badbound'" in str(excinfo.value)


def test_bounds_exported_for_one_connection_are_not_read_back_as_the_users(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MLflow reads the bounds from the environment, so the hook sets them for its calls only; after them
    the variable is gone again and a later connection without extras gets the defaults."""
    connection(
        monkeypatch,
        "mlflow_patient",
        extra={"tracking_uri": f"sqlite:///{tmp_path / 'p.db'}", "http_request_timeout": 60},
    )
    MlflowHook("mlflow_patient").experiment_ids()
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    connection(monkeypatch, "mlflow_default_bounds", extra={"tracking_uri": "http://m:5000"})
    assert MlflowHook("mlflow_default_bounds").settings.http_request_timeout == 10


def test_operator_on_a_closed_port_fails_fast_naming_connection_and_uri(
    monkeypatch: pytest.MonkeyPatch, raw_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the user met it: a connection to a server that is down. MLflow's own defaults retried for ~255 s
    and ended in a raw MlflowException; with the hook's defaults (no extras, no variables) it is seconds."""
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from tests.example import transform
    from tests.support import make_context

    uri = f"http://127.0.0.1:{closed_port()}"
    connection(monkeypatch, "mlflow_default", extra={"tracking_uri": uri})
    op = FeaturizeOperator(task_id="featurize", raw_uri=str(raw_data), transform=transform)
    started = time.monotonic()
    with pytest.raises(MlflowConnectionError) as excinfo:
        op.execute(make_context("unreachable", "featurize"))  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[measured] operator on a closed port failed after {elapsed:.1f} s (MLflow defaults: ~255 s)")
    assert elapsed < 45
    message = str(excinfo.value)
    assert f"Cannot reach MLflow at {uri} (connection 'mlflow_default')" in message
    assert "Connection refused" in message and "gave up after 3 attempt(s)" in message
    assert "http_request_timeout" in message and "http_request_max_retries" in message


def test_a_server_that_never_answers_is_bounded_by_the_connections_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that accepts connections but never answers (a hung server): each attempt waits the
    connection's ``http_request_timeout``; two attempts of 1 s fail in a few seconds, not minutes."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel completes the handshakes; nothing ever reads or answers
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        connection(
            monkeypatch,
            "mlflow_hung",
            extra={"tracking_uri": uri, "http_request_timeout": 1, "http_request_max_retries": 1},
        )
        started = time.monotonic()
        with pytest.raises(MlflowConnectionError) as excinfo:
            MlflowHook("mlflow_hung").connect()
        elapsed = time.monotonic() - started
    assert elapsed < 15, f"took {elapsed:.1f} s"
    message = str(excinfo.value)
    assert "timed out" in message and "(connection 'mlflow_hung')" in message and "now 1 s" in message


def test_an_answering_server_error_is_not_called_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that answers (here: not an MLflow server, 404) is reachable: MLflow's own error comes through."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from mlflow.exceptions import MlflowException

    class NotMlflow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API
            self.send_error(404)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection(monkeypatch, "mlflow_wrong", extra={"tracking_uri": f"http://127.0.0.1:{server.server_port}"})
        with pytest.raises(MlflowException) as excinfo:
            MlflowHook("mlflow_wrong").connect()
    finally:
        server.shutdown()
        server.server_close()
    assert not isinstance(excinfo.value, MlflowConnectionError)
    assert "404" in str(excinfo.value)


def test_a_registry_that_cannot_be_reached_is_named_not_the_tracking_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The first request of a hook is the check: a registry server that is down is reported at its own URI."""
    registry = f"http://127.0.0.1:{closed_port()}"
    connection(
        monkeypatch,
        "mlflow_split",
        extra={
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "registry_uri": registry,
            "http_request_max_retries": 0,
        },
    )
    with pytest.raises(MlflowConnectionError) as excinfo:
        MlflowHook("mlflow_split").model_version("any", "1")
    message = str(excinfo.value)
    assert f"Cannot reach MLflow at {registry} (connection 'mlflow_split')" in message
    assert "Connection refused" in message and "gave up after 1 attempt(s)" in message


def test_a_model_load_as_the_first_request_to_a_server_that_is_down_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading goes through MLflow's own stores, whose errors are MLflow's: a hook whose server has not answered
    yet asks it first, so the error is the hook's, naming the server, not MLflow's raw one."""
    uri = f"http://127.0.0.1:{closed_port()}"
    connection(monkeypatch, "mlflow_down_load", extra={"tracking_uri": uri, "http_request_max_retries": 0})
    with pytest.raises(MlflowConnectionError) as excinfo:
        MlflowHook("mlflow_down_load").load_model("models:/any/1")
    assert f"Cannot reach MLflow at {uri} (connection 'mlflow_down_load')" in str(excinfo.value)
