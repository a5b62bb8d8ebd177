"""A real deployment for the Models page: the example run twice with ``airflow dags test`` (version 1
promoted, version 2 blocked by its gate), then a real ``airflow api-server`` with the plugin loaded from
the installed entry point, SimpleAuthManager, and Airflow's multi-team mode so that DAG read access
differs between users.

Who may read what (each DAG bundle belongs to a team; SimpleAuthManager grants a team member access to
the team's DAGs only):
- ``admin`` (ADMIN): everything;
- ``ml_viewer`` (VIEWER, team ``mlteam``): the example's DAG (bundle ``dags-folder``), not ``secret_dag``;
- ``other_viewer`` (VIEWER, team ``other``): ``secret_dag`` (bundle ``other-dags``) only.

Every subprocess gets an environment built here from nothing but PATH and HOME, like a user's shell
with the README's settings: the test session's own stores are not visible to it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import DAGS, ROOT

MODEL = "breast_cancer_classifier"
#: MLflow refuses "/" and ":" in model names, so ``<script>alert(1)</script>`` cannot be one: it is this
#: model's description instead, and the name is markup that runs script when parsed as HTML.
XSS_MODEL = "<img src=x onerror=alert(1)>"
XSS_DESCRIPTION = "<script>alert(1)</script>"
SECRET_MODEL = "secret_model"
#: A credential planted in recorded values; no response may contain it.
PLANTED_SECRET = "hunter2-planted"
USERS = {"admin": "admin-pw", "ml_viewer": "ml-viewer-pw", "other_viewer": "other-viewer-pw"}
SECRET_DAG = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="secret_dag", schedule=None):
    EmptyOperator(task_id="noop")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """HTTP against the api-server: the body as JSON when it is JSON, else as text."""

    def __init__(self, url: str) -> None:
        self.url = url

    def token(self, user: str) -> str:
        status, body, _ = self.request(
            "/auth/token", method="POST", body={"username": user, "password": USERS[user]}
        )
        assert status == 201 or status == 200, (status, body)
        return str(body["access_token"])

    def request(
        self, path: str, *, token: str | None = None, method: str = "GET", body: Any = None,
        cookie: str | None = None, accept: str = "application/json",
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = f"_token={cookie}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), dict(e.headers)
        text = raw.decode()
        try:
            return status, json.loads(text), got
        except json.JSONDecodeError:
            return status, text, got


def _run(args: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{tail}", pytrace=False)


def _environment(base: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", str(base)),
        "LANG": "C.UTF-8",
        "AIRFLOW_HOME": str(base / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-ml-ui-tests",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(base / "events.jsonl"), "append": True}
        ),
        "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT": str(base / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "AIRFLOW__ML_PROVIDER__MLFLOW_ARTIFACT_LOCATION": str(base / "mlflow-artifacts"),
        "AIRFLOW__ML_PROVIDER__LOCK_DIR": str(base / "locks"),
        "BREAST_CANCER_RAW_URI": str(base / "data" / "breast_cancer.parquet"),
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _plant_models(tracking_uri: str) -> None:
    """Versions no DAG run of the example makes: a model whose name is markup, one produced by
    ``secret_dag``, and recorded values carrying a credential."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    experiment = client.create_experiment("ui-planted")
    run = client.create_run(experiment)
    client.create_registered_model(XSS_MODEL, description=XSS_DESCRIPTION)
    client.create_model_version(
        XSS_MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
        tags={
            "airflow.dag_id": "breast_cancer_retrain",
            "airflow.run_id": f"https://bob:{PLANTED_SECRET}@runs.example.com/x",
            "airflow_ml.gate.status": "<b>failed</b>",
            "airflow_ml.reproduction_of": f"https://mlflow.example.com/x?token={PLANTED_SECRET}",
        },
    )
    client.create_registered_model(SECRET_MODEL)
    client.create_model_version(
        SECRET_MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
        tags={"airflow.dag_id": "secret_dag", "airflow.run_id": "manual__secret", "airflow_ml.gate.status": "passed"},
    )


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The api-server with the plugin over two real example runs; yields url, users, model, log, env."""
    base = tmp_path_factory.mktemp("ui")
    log = base / "setup.log"
    env = _environment(base)
    for sub in ("airflow", "data", "artifacts", "locks"):
        (base / sub).mkdir(exist_ok=True)
    py = sys.executable
    _run([py, "-m", "dags_examples.breast_cancer.data", env["BREAST_CANCER_RAW_URI"]], env, log)
    _run(["airflow", "db", "migrate"], env, log)
    _run(["airflow", "dags", "test", "breast_cancer_retrain"], env, log)
    # The second run's gate fails (accuracy ~0.98 < 0.999): version 2 is blocked, version 1 stays champion.
    second = subprocess.run(
        ["airflow", "dags", "test", "breast_cancer_retrain", "-c", json.dumps({"min_accuracy": 0.999})],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )
    with log.open("a") as out:
        out.write(second.stdout + second.stderr)
    _plant_models(env["MLFLOW_TRACKING_URI"])

    # Multi-team: the example's bundle belongs to team "mlteam", a second bundle with secret_dag to "other".
    other_dags = base / "other-dags"
    other_dags.mkdir()
    (other_dags / "secret_dag.py").write_text(SECRET_DAG)
    passwords = base / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env.update({
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}, "team_name": "mlteam"},
            {"name": "other-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(other_dags)}, "team_name": "other"},
        ]),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,ml_viewer:viewer:mlteam,other_viewer:viewer:other",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
    })
    for team in ("mlteam", "other"):
        _run(["airflow", "teams", "create", team], env, log)
    _run(["airflow", "dags", "reserialize"], env, log)

    server_log = base / "api-server.log"
    with server_log.open("w") as out:
        server = subprocess.Popen(
            ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base, start_new_session=True,
        )
    client = Client(url)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, _ = client.request("/api/v2/monitor/health")
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(server_log.read_text().splitlines()[-40:])
                pytest.fail(f"airflow api-server did not start:\n{tail}", pytrace=False)
            time.sleep(0.5)
        yield {
            "url": url, "users": dict(USERS), "model": MODEL, "client": client, "base": base,
            "env": env, "log": server_log, "second_run_ok": second.returncode == 0,
        }
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
