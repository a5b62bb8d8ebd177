"""What the hook asks a real ``mlflow server`` for: no read MLflow makes only to learn what it was told.

Every request the process sends is recorded on its way out (``HTTPAdapter.send`` wrapped: the request still
goes to the server, whose answers the assertions also check). Against a server each request is a round
trip; a step changes three run statuses, writes artifacts to its own run and loads up to two models.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.conf import OPTIONS
from airflow_ml_provider.hooks.mlflow import MlflowHook

Requests = list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a SQLite store, serving artifacts (``mlflow-artifacts:``) as deployments do."""
    root = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log = root / "server.log"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1], "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, server: str) -> Callable[[], Requests]:
    """``sent()`` returns the (method, path) of every request to the server since the last call."""
    import requests.adapters

    lock, seen = threading.Lock(), []
    send = requests.adapters.HTTPAdapter.send

    def recording_send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.url.startswith(server):
            with lock:
                seen.append((request.method, request.url[len(server) :].split("?")[0]))
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording_send)

    def take() -> Requests:
        with lock:
            out = list(seen)
            seen.clear()
        return out

    return take


@pytest.fixture
def hook(server: str, monkeypatch: pytest.MonkeyPatch) -> MlflowHook:
    """A hook on the server, whose experiments keep their artifacts there (the suite's local location unset)."""
    location = OPTIONS["mlflow_artifact_location"].env_var
    for name in ("MLFLOW_TRACKING_URI", location, "AIRFLOW_ML_MLFLOW_ARTIFACT_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    hook = MlflowHook(tracking_uri=server)
    hook.connect()  # the server has answered: no check before artifact transfers
    return hook


def _new_run(hook: MlflowHook) -> str:
    experiment = hook.get_or_create_experiment(f"requests-{uuid.uuid4().hex[:8]}")
    return hook.create_run(experiment, "step", {}).info.run_id


def test_a_status_change_is_one_request_and_keeps_the_end_time(hook: MlflowHook, sent: Callable[[], Requests]) -> None:
    run_id = _new_run(hook)
    sent()
    hook.set_run_status(run_id, "FINISHED")
    assert sent() == [("POST", "/api/2.0/mlflow/runs/update")]
    finished = hook.get_run(run_id).info
    assert finished.status == "FINISHED" and finished.end_time
    sent()

    hook.set_run_status(run_id, "RUNNING")
    assert sent() == [("POST", "/api/2.0/mlflow/runs/update")]
    reopened = hook.get_run(run_id).info
    assert reopened.status == "RUNNING" and reopened.end_time == finished.end_time, "as MLflow's update_run leaves it"

    hook.set_run_status(run_id, "FAILED")
    sent()
    assert hook.get_run(run_id).info.status == "FAILED"


def test_artifacts_of_a_run_the_hook_created_or_read_need_no_read_of_the_run(
    hook: MlflowHook, server: str, sent: Callable[[], Requests]
) -> None:
    run_id = _new_run(hook)
    sent()
    hook.log_dict(run_id, {"a": 1}, "airflow_ml/x.json")
    [(method, path)] = sent()
    assert method == "PUT" and path.endswith(f"/{run_id}/artifacts/airflow_ml/x.json"), path

    other = MlflowHook(tracking_uri=server)  # a new hook (a later task) that reads the run, then its artifact
    other.connect()
    assert other.get_run(run_id).info.run_id == run_id
    sent()
    assert other.read_json_artifact(run_id, "airflow_ml/x.json") == {"a": 1}
    paths = [path for _, path in sent()]
    assert not [p for p in paths if "/mlflow/runs/" in p or "logged-models" in p], paths
    [transfer] = [p for p in paths if "/mlflow-artifacts/" in p]  # the file itself, not listed first
    assert transfer.endswith(f"/{run_id}/artifacts/airflow_ml/x.json"), paths


def test_a_missing_artifact_file_is_mlflows_error_naming_it(hook: MlflowHook) -> None:
    """The download without a listing falls back to MLflow's own, so a missing file is MLflow's error as before
    (the server's artifact proxy reports it as a failed download, not RESOURCE_DOES_NOT_EXIST)."""
    from mlflow.exceptions import MlflowException

    run_id = _new_run(hook)
    with pytest.raises(MlflowException, match="airflow_ml/missing.json"):
        hook.read_json_artifact(run_id, "airflow_ml/missing.json")


def test_reading_an_artifact_of_a_run_the_hook_never_saw_reads_the_run_once(
    hook: MlflowHook, server: str, sent: Callable[[], Requests]
) -> None:
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    plain = MlflowClient(tracking_uri=server)  # not the hook: the artifact URI is not known to it
    run_id = plain.create_run(hook.get_or_create_experiment("requests-unseen")).info.run_id
    plain.log_dict(run_id, {"b": 2}, "y.json")
    tracking_utils._artifact_repos_cache.pop(run_id)  # MLflow's process-wide cache: as in a new process
    sent()
    assert hook.read_json_artifact(run_id, "y.json") == {"b": 2}
    assert [p for _, p in sent() if "/mlflow/runs/" in p] == ["/api/2.0/mlflow/runs/get"]


def test_loading_a_scikit_learn_version_downloads_only_what_loading_reads(
    hook: MlflowHook, sent: Callable[[], Requests]
) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    run_id = _new_run(hook)
    info = hook.log_model(run_id, "sklearn", sk_model=model, name="model", pip_requirements=["scikit-learn"])
    name = f"requests-model-{uuid.uuid4().hex[:8]}"
    version = hook.register_model(name, info.model_uri, {})
    sent()

    loaded = hook.load_model(f"models:/{name}/{version}")
    files = sorted(
        path.rsplit("/", 1)[1]
        for method, path in sent()
        if method == "GET" and path.startswith("/api/2.0/mlflow-artifacts/artifacts/")
    )
    assert files == ["MLmodel", "model.skops"], files
    assert list(loaded.predict(x)) == list(model.predict(x))


def test_several_version_tags_check_the_name_once(
    hook: MlflowHook, server: str, sent: Callable[[], Requests]
) -> None:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
    info = hook.log_model(_new_run(hook), "sklearn", sk_model=model, name="model", pip_requirements=["scikit-learn"])
    name = f"requests-tags-{uuid.uuid4().hex[:8]}"
    version = hook.register_model(name, info.model_uri, {})
    sent()
    hook.set_model_version_tags(name, version, {"a": "1", "b": "2", "c": "3"})
    paths = [path for _, path in sent()]
    # MLflow's check that the name is a model, not a prompt, made once (it reads the registered model)
    assert paths.count("/api/2.0/mlflow/registered-models/get") == 1
    assert paths.count("/api/2.0/mlflow/model-versions/set-tag") == 3
    tags = hook.model_version(name, version).tags
    assert {key: tags[key] for key in "abc"} == {"a": "1", "b": "2", "c": "3"}
