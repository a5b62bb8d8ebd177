"""`airflow-ml reproduce --airflow-url`: the rebuild runs on a real Airflow deployment on this machine.

The module starts the four Airflow 3 components as subprocesses (api-server on a free loopback port,
scheduler with the LocalExecutor, dag-processor, triggerer), with the session's environment from
tests/conftest.py: the same AIRFLOW_HOME and SQLite metadata DB, the example DAGs folder and the same
MLflow store, so the reproduced run's records can be read back exactly as on the local path. The
original model version is trained first with dag.test(), before the deployment starts, so the two
never write to the SQLite DB at the same time. All processes are stopped (process-group kill) at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_ml_provider.cli.main import main
from tests.support import run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"
STARTUP_TIMEOUT = 120.0
COMPONENTS = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode() if body is not None else None, headers,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@pytest.fixture(scope="module")
def original(airflow_db: Path, raw_data: Path, mlflow_client: Any, tmp_path_factory: Any) -> dict[str, Any]:
    """A model version trained with dag.test() on a private copy of the raw data."""
    raw = tmp_path_factory.mktemp("reproduce-remote") / "raw.parquet"
    shutil.copy(raw_data, raw)
    run = run_dag(DAG_ID, {"raw_uri": str(raw)})
    assert run.state == "success", run.state
    version = max(int(v.version) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))
    return {"raw": raw, "version": str(version), "run_id": run.run_id}


@pytest.fixture(scope="module")
def deployment(original: dict[str, Any], tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    """A running Airflow deployment: {"url", "user", "password", "token", "logs", "startup_s"}.

    Depends on ``original`` only for ordering: the deployment starts after the dag.test() run.
    """
    home = Path(os.environ["AIRFLOW_HOME"])
    logs = tmp_path_factory.mktemp("airflow-deployment")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        # Airflow 3 has no SequentialExecutor; the LocalExecutor runs on SQLite (`airflow standalone` uses it).
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        # Manual runs only: unpausing the weekly DAG must not also start a scheduled run.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # The deployment's lineage events go to their own file, not the one other tests read.
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(logs / "events.jsonl"), "append": True}
        ),
    }
    started = time.monotonic()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, args in COMPONENTS.items():
            with open(logs / f"{name}.log", "wb") as out:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "airflow", *(a.format(port=port) for a in args)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )

        def fail(why: str) -> None:
            pytest.fail(why + "".join(f"\n--- {n}.log\n{_tail(logs / f'{n}.log')}" for n in COMPONENTS))

        token = None
        while True:
            if time.monotonic() - started > STARTUP_TIMEOUT:
                fail(f"the Airflow deployment at {url} was not ready within {STARTUP_TIMEOUT:g} s")
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                fail(f"Airflow components exited early: {dead}")
            time.sleep(1)
            try:
                status, health = _http(f"{url}/api/v2/monitor/health")
            except OSError:
                continue
            if status != 200 or any(v.get("status") != "healthy" for v in health.values()):
                continue
            if token is None:
                password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
                status, body = _http(f"{url}/auth/token", "POST", {"username": "admin", "password": password})
                assert status == 201, body
                token = body["access_token"]
            if _http(f"{url}/api/v2/dags/{DAG_ID}", token=token)[0] == 200:  # parsed by the dag-processor
                break
        yield {"url": url, "user": "admin", "password": password, "token": token, "logs": logs,
               "startup_s": round(time.monotonic() - started, 1)}
    finally:
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30  # graceful shutdown, then SIGKILL
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (task processes)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def _dag_runs(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    status, body = _http(f"{deployment['url']}/api/v2/dags/{DAG_ID}/dagRuns", token=deployment["token"])
    assert status == 200, body
    return list(body["dag_runs"])


def test_unreachable_url_fails_quickly(original: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()

    code = main(["reproduce", f"models:/{MODEL}/{original['version']}", "--airflow-url", url,
                 "--airflow-user", "admin", "--airflow-password", "x", "--report-dir", str(tmp_path)])

    assert code == 2
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert f"cannot reach Airflow at {url}" in err, err
    assert not (tmp_path / "reproduction.json").exists()


def test_wrong_password_is_an_authentication_error(
    original: dict[str, Any], deployment: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    runs_before = len(_dag_runs(deployment))
    target = f"models:/{MODEL}/{original['version']}"

    code = main(["reproduce", target, "--airflow-url", deployment["url"],
                 "--airflow-user", "admin", "--airflow-password", "not-the-password", "--report-dir", str(tmp_path)])

    assert code == 2
    err = capsys.readouterr().err
    assert "authentication failed" in err and "'admin'" in err, err

    monkeypatch.delenv("AIRFLOW__ML_PROVIDER__AIRFLOW_USER", raising=False)
    monkeypatch.delenv("AIRFLOW__ML_PROVIDER__AIRFLOW_PASSWORD", raising=False)
    assert main(["reproduce", target, "--airflow-url", deployment["url"], "--report-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "authentication failed" in err and "requires credentials" in err, err
    assert len(_dag_runs(deployment)) == runs_before, "nothing was triggered"


def test_paused_dag_is_refused_without_unpause(
    original: dict[str, Any], deployment: dict[str, Any], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    url, token = deployment["url"], deployment["token"]
    assert _http(f"{url}/api/v2/dags/{DAG_ID}?update_mask=is_paused", "PATCH", {"is_paused": True}, token)[0] == 200
    runs_before = len(_dag_runs(deployment))
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__AIRFLOW_USER", deployment["user"])
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__AIRFLOW_PASSWORD", deployment["password"])

    code = main(["reproduce", f"models:/{MODEL}/{original['version']}", "--airflow-url", url,
                 "--report-dir", str(tmp_path)])

    assert code == 2
    err = capsys.readouterr().err
    assert f"DAG '{DAG_ID}' is paused" in err and "--unpause" in err, err
    assert len(_dag_runs(deployment)) == runs_before, "nothing was triggered"
    assert _http(f"{url}/api/v2/dags/{DAG_ID}", token=token)[1]["is_paused"] is True


def test_reproduces_through_the_rest_api(
    original: dict[str, Any], deployment: dict[str, Any], mlflow_client: Any, tmp_path: Path, capsys: Any,
    monkeypatch: Any
) -> None:
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__AIRFLOW_USER", deployment["user"])
    monkeypatch.setenv("AIRFLOW__ML_PROVIDER__AIRFLOW_PASSWORD", deployment["password"])
    started = time.monotonic()

    code = main(["reproduce", f"models:/{MODEL}/{original['version']}", "--airflow-url", deployment["url"],
                 "--unpause", "--timeout", "180", "--report-dir", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err + _tail(deployment["logs"] / "scheduler.log")
    report = json.loads((tmp_path / "reproduction.json").read_text())
    assert report["reproduced"] is True
    steps = {s["task_id"]: s for s in report["steps"]}
    featurize = steps["featurize"]["outputs"][0]
    assert featurize["outcome"] == "identical" and featurize["original"] == featurize["reproduced"]
    metrics = steps["evaluate"]["metrics"]
    assert {m["name"] for m in metrics} >= {"accuracy", "roc_auc", "f1"}
    assert all(m["outcome"] == "identical" and m["delta"] == 0 for m in metrics), metrics
    assert "identical" in captured.out and "REPRODUCED" in captured.out

    # The run happened on the deployment, triggered through the API, with the reproduction conf.
    run_id = report["reproduced_run"]
    assert run_id != original["run_id"]
    status, run = _http(f"{deployment['url']}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}",
                        token=deployment["token"])
    assert status == 200, run
    assert run["state"] == "success" and run["run_type"] == "manual" and run["triggered_by"] == "rest_api"
    assert run["conf"]["airflow_ml"]["reproduction_of"] == f"models:/{MODEL}/{original['version']}"
    assert f"triggered {DAG_ID} run {run_id}" in captured.err

    version = mlflow_client.get_model_version(MODEL, report["reproduced_version"])
    assert version.tags["airflow_ml.reproduction_of"] == f"models:/{MODEL}/{original['version']}"
    print(f"deployment ready in {deployment['startup_s']} s; remote reproduction took "
          f"{time.monotonic() - started:.1f} s")


def test_unknown_dag_is_named(deployment: dict[str, Any]) -> None:
    from airflow_ml_provider.reproduce.original import ReproductionError
    from airflow_ml_provider.reproduce.remote import AirflowApiRunner

    runner = AirflowApiRunner(deployment["url"], deployment["user"], deployment["password"])
    with pytest.raises(ReproductionError, match=r"DAG 'no_such_dag' not found in the Airflow deployment at http://127"):
        runner.load_dag("no_such_dag")


def test_a_run_that_does_not_finish_in_time_is_a_timeout(deployment: dict[str, Any]) -> None:
    """A run triggered on a paused DAG stays queued: waiting for it times out. The run is deleted after."""
    from airflow_ml_provider.reproduce.remote import AirflowApiRunner, RunTimeout

    url, token = deployment["url"], deployment["token"]
    assert _http(f"{url}/api/v2/dags/{DAG_ID}?update_mask=is_paused", "PATCH", {"is_paused": True}, token)[0] == 200
    status, run = _http(f"{url}/api/v2/dags/{DAG_ID}/dagRuns", "POST", {"logical_date": None, "conf": {}}, token)
    assert status == 200, run
    run_path = f"{url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run['dag_run_id'], safe='')}"
    try:
        runner = AirflowApiRunner(url, deployment["user"], deployment["password"], timeout=1.5, poll_interval=0.5)
        started = time.monotonic()
        with pytest.raises(RunTimeout) as error:
            runner._wait(DAG_ID, run["dag_run_id"])
        assert time.monotonic() - started < 10
        assert f"run {run['dag_run_id']}" in str(error.value) and "within 1.5 s (state: queued)" in str(error.value)
    finally:
        assert _http(run_path, "DELETE", token=token)[0] == 204
