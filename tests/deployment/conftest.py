"""The native deployment (``deploy/native.py``, docker-compose.yaml's topology without Docker) for the
deployment tests, started once per session as a user starts it, and a small REST API client.

The deployment runs on the machine's PostgreSQL and Redis (required in CI, skipped without them
locally), in its own databases, Redis database and ports, with the example DAG and the test variant
``tests/deployment/dags`` mounted as its DAGs folder. The one override beyond the compose file is a
short task-instance heartbeat timeout, so that a killed worker's task is noticed in seconds, not the
default 5 minutes (``--env``, as a compose override file would set it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.promotion.conftest import postgres_server  # noqa: F401 (the fixture, shared)
from tests.requirements import requirement_missing
from tests.support import ROOT, STATE

LAUNCHER = ROOT / "deploy" / "native.py"
MODEL = "breast_cancer_classifier"
TERMINAL = ("success", "failed")
#: Seconds before the scheduler fails a task whose process stopped heartbeating (default 300).
HEARTBEAT_TIMEOUT = 20


@pytest.fixture(scope="session")
def redis_server() -> None:
    """The local Redis server, started with the machine's documented command if it is down."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        client.ping()
        return
    except redis.RedisError as e:
        first = str(e)
    if shutil.which("redis-server"):
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "",
             "--appendonly", "no"], capture_output=True, check=False,
        )
        for _ in range(20):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.5)
    requirement_missing(
        f"Redis is not reachable at 127.0.0.1:6379 ({first})",
        "The deployment tests use it as the Celery broker: start redis-server.",
    )


def _free_port_base(span: int = 20) -> int:
    for base in range(31000, 40000, 97):
        ok = True
        for port in range(base, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free range of 20 ports between 31000 and 40000")


def launcher(state: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``deploy/native.py`` as a user runs it (the project's interpreter, only the test's environment)."""
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "--project", state.name, "--state", str(state), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


@dataclass
class Deployment:
    state: Path
    urls: dict[str, str]
    login: tuple[str, str]
    up_output: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = launcher(self.state, *args, timeout=timeout)
        assert done.returncode == 0, f"native.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def status(self) -> dict[str, Any]:
        return json.loads(self.run("status", "--json").stdout)

    @property
    def logs(self) -> Path:
        return self.state / "volumes" / "airflow-logs"

    @property
    def lineage_events(self) -> Path:
        return self.state / "volumes" / "shared" / "openlineage" / "events.jsonl"

    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.urls["mlflow"], registry_uri=self.urls["mlflow"])


@pytest.fixture(scope="session")
def deployment(postgres_server: None, redis_server: None) -> Iterator[Deployment]:  # noqa: F811
    state = STATE / f"deploy{os.getpid()}"
    dags = STATE / "deploy-dags"
    shutil.rmtree(dags, ignore_errors=True)
    shutil.copytree(ROOT / "dags_examples", dags, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(__file__).parent / "dags" / "breast_cancer_variants.py", dags)
    started = time.monotonic()
    up = launcher(
        state, "up", "--port-base", str(_free_port_base()), "--redis-db", "11",
        "--mount", f"/opt/airflow/dags={dags}",
        "--env", f"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT={HEARTBEAT_TIMEOUT}",
        "--env", "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5",
        timeout=600,
    )
    try:
        assert up.returncode == 0, f"make deploy failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        print(f"native deployment up in {time.monotonic() - started:.0f} s")
        status = json.loads(launcher(state, "status", "--json").stdout)
        yield Deployment(state, status["urls"], tuple(status["login"]), up.stdout)
    finally:
        recorded = launcher(state, "status", "--json")
        processes = json.loads(recorded.stdout)["processes"] if recorded.returncode == 0 else []
        pids = [p["pid"] for p in processes if p["pid"]]
        down = launcher(state, "down", "--purge", timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
        # `down` stopped exactly what `up` started: every recorded process group is gone.
        left = [pid for pid in pids if _group_alive(pid)]
        assert not left, f"processes left running after `down`: {left}"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class AirflowAPI:
    """The bits of Airflow's REST API (v2) the tests use, authenticated as the deployment's admin."""

    def __init__(self, base: str, login: tuple[str, str]) -> None:
        self.base = base
        self.token = self._call("POST", "/auth/token", {"username": login[0], "password": login[1]})["access_token"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: HTTP {e.code}: {e.read()[:2000]!r}") from e

    def unpause(self, dag_id: str, timeout: float = 180) -> None:
        """Unpause a DAG once the dag-processor has parsed it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.unpause(dag_id)
        run = self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        answer = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances")
        return {ti["task_id"]: ti for ti in answer["task_instances"]}

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                tis = {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}
                raise AssertionError(f"{dag_id} run {run_id} still {state} after {timeout:.0f} s: {tis}")
            time.sleep(3)

    def clear_failed(self, dag_id: str, run_id: str) -> None:
        self._call("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances",
                   {"dry_run": False, "dag_run_id": run_id, "only_failed": True, "reset_dag_runs": True})


def _q(run_id: str) -> str:
    from urllib.parse import quote

    return quote(run_id, safe="")


@pytest.fixture(scope="session")
def airflow_api(deployment: Deployment) -> AirflowAPI:
    return AirflowAPI(deployment.urls["airflow-apiserver"], deployment.login)


def task_log(deployment: Deployment, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> list[dict[str, Any]]:
    """The JSON lines of one attempt's task log, as the UI shows them."""
    path = deployment.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / f"attempt={attempt}.log"
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"event": line})
    return lines


def run_logs_text(deployment: Deployment, dag_id: str, run_id: str) -> str:
    """Every task log of a DAG run (all attempts, trigger logs included), as one text."""
    root = deployment.logs / f"dag_id={dag_id}" / f"run_id={run_id}"
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*.log*")))
