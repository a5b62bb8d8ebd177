"""MlflowHook changes nothing process-wide: credentials per connection, MLflow's globals left alone.

A small local HTTP server records the requests it gets (path and ``Authorization`` header) and answers
as an empty MLflow tracking server would: a real HTTP round trip through MLflow's REST client, without
an MLflow server process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.hooks.mlflow import HTTP_SETTINGS, MlflowHook

#: Every variable MLflow reads for where it talks to and how (credentials, URIs, HTTP bounds).
MLFLOW_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    *(env for _, env, _ in HTTP_SETTINGS),
)


class Recorder:
    """A stand-in tracking server: every request's path and Authorization header, in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append((self.path.split("?", 1)[0], self.headers.get("Authorization")))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps({}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def authorizations(self) -> set[str | None]:
        return {auth for _, auth in self.requests}


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


@pytest.fixture(autouse=True)
def no_mlflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MLFLOW_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


def mlflow_globals() -> tuple[Any, ...]:
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        {name: os.environ.get(name) for name in MLFLOW_VARIABLES},
    )


def test_two_connections_send_their_own_credentials(monkeypatch: pytest.MonkeyPatch, server: Recorder) -> None:
    """Basic auth for one, a bearer token for another, none for a third: in one process, interleaved."""
    import base64

    connection(monkeypatch, "mlflow_alice", login="alice", password="pw-alice-1", extra={"tracking_uri": server.uri})
    connection(monkeypatch, "mlflow_token", password="token-bob-22", extra={"tracking_uri": server.uri})
    connection(monkeypatch, "mlflow_anon", extra={"tracking_uri": server.uri})
    alice, token, anon = MlflowHook("mlflow_alice"), MlflowHook("mlflow_token"), MlflowHook("mlflow_anon")
    before = mlflow_globals()

    sent: dict[str, set[str | None]] = {}
    for name, hook in (("alice", alice), ("token", token), ("anon", anon), ("alice-again", alice)):
        server.requests.clear()
        hook.experiment_ids()
        hook.alias_version("model", "champion")  # a registry request too
        sent[name] = server.authorizations()

    basic = "Basic " + base64.standard_b64encode(b"alice:pw-alice-1").decode()
    assert sent == {"alice": {basic}, "token": {"Bearer token-bob-22"}, "anon": {None}, "alice-again": {basic}}
    assert mlflow_globals() == before, "the hook changed MLflow's process-wide URIs or variables"


def test_credentials_reach_the_calls_mlflow_makes_outside_the_client(server: Recorder) -> None:
    """Artifact proxy, models:/ downloads and the fluent API build their own stores from the environment:
    inside the hook's request scope they carry the connection's header; other threads and calls do not."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    from airflow_ml_provider.hooks._client import Credentials, request_scope

    def call() -> None:
        http_request(get_default_host_creds(server.uri), "/api/2.0/mlflow/experiments/search", "GET")

    other_thread: list[set[str | None]] = []
    with request_scope(Credentials("carol", "pw-carol-3"), {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0}):
        call()
        inside = server.authorizations()
        server.requests.clear()
        worker = threading.Thread(target=lambda: (call(), other_thread.append(server.authorizations())))
        worker.start()
        worker.join()
    server.requests.clear()
    call()
    assert inside == {"Basic Y2Fyb2w6cHctY2Fyb2wtMw=="}
    assert other_thread == [{None}], "another thread saw the scoped connection's credentials"
    assert server.authorizations() == {None}, "the credentials outlived the scope"


def test_no_process_wide_change_after_the_hook_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiments, runs, artifacts and the fluent URI scope on a local store: MLflow's globals and the
    environment are as they were, also when MLflow's globals point elsewhere to begin with."""
    import mlflow

    from airflow_ml_provider.hooks._client import fluent_uris

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    mlflow.set_tracking_uri(elsewhere)  # also exports MLFLOW_TRACKING_URI
    try:
        connection(
            monkeypatch,
            "mlflow_local",
            login="dave",
            password="pw-dave-44",
            extra={"tracking_uri": f"sqlite:///{tmp_path / 'store.db'}", "http_request_timeout": 60},
        )
        before = mlflow_globals()
        hook = MlflowHook("mlflow_local")
        experiment = hook.get_or_create_experiment("isolation")
        run = hook.create_run(experiment, "step", {"k": "v"})
        hook.log_batch(run.info.run_id, params={"p": "1"}, metrics={"m": 0.5}, tags={"t": "x"})
        hook.log_dict(run.info.run_id, {"a": 1}, "d/a.json")
        assert hook.read_json_artifact(run.info.run_id, "d/a.json") == {"a": 1}
        hook.set_run_status(run.info.run_id, "FINISHED")
        with fluent_uris(hook.tracking_uri, hook.registry_uri):
            assert mlflow.get_tracking_uri() == hook.tracking_uri
            assert mlflow.get_registry_uri() == hook.registry_uri
        assert mlflow_globals() == before
        assert mlflow.get_tracking_uri() == elsewhere
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_http_bounds_hold_for_the_call_and_are_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow reads the bounds from the environment on each request: set for the span, then put back,
    the user's own value included; nested spans keep the outer one's values."""
    from airflow_ml_provider.hooks._client import http_bounds

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    with http_bounds({"MLFLOW_HTTP_REQUEST_TIMEOUT": 3, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 0}):
        assert (os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"], os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) == ("3", "0")
        with http_bounds({"MLFLOW_HTTP_REQUEST_TIMEOUT": 50, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 9}):
            assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_credentials_never_show_in_a_repr() -> None:
    from airflow_ml_provider.hooks._client import Credentials

    assert "pw-erin-5" not in repr(Credentials("erin", "pw-erin-5"))
