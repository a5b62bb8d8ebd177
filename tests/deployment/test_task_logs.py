"""The task logs a person reads in the Airflow UI, produced the way a deployment produces them: the
example DAG runs through a real executor (``airflow dags test --use-executor``: LocalExecutor, each
task in its own supervised process talking to a real ``airflow api-server`` over the execution API),
and the per-task JSON log files the UI shows are read back.

Airflow's supervisor logs whatever a task writes to stderr at ERROR: MLflow's registry messages and
artifact progress bars made every successful task show red ERROR lines. A successful run must show
none, and MLflow's messages must still be there, at INFO.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import STATE

DAG_ID = "breast_cancer_retrain"
pytestmark = pytest.mark.dag


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def executor_env(airflow_db: Path) -> Iterator[dict[str, str]]:
    """A running api-server on this session's metadata DB, and the environment that makes tasks use it."""
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "task-log-tests-only",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
    }
    log = (STATE / f"api-server-{port}.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/version", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not come up on port {port}: see {log.name}", pytrace=False)
            time.sleep(0.5)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _task_logs(run_id: str) -> dict[str, list[dict[str, Any]]]:
    root = Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    out = {}
    for path in sorted(root.glob("task_id=*/attempt=*.log")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
        out[path.parent.name.split("=", 1)[1]] = lines
    return out


def test_a_successful_run_shows_no_error_lines_and_mlflow_messages_at_info(
    executor_env: dict[str, str], raw_data: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, "--use-executor",
         "-c", json.dumps({"raw_uri": str(raw_data)})],
        env=executor_env, capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    runs = sorted((Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}").glob("run_id=*"),
                  key=lambda p: p.stat().st_mtime)
    assert runs, "no task logs were written"
    logs = _task_logs(runs[-1].name.split("=", 1)[1])
    assert {"featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"} <= set(logs), sorted(logs)
    red = {
        task: [f"{line.get('logger')}: {line.get('event')}"[:200] for line in lines
               if str(line.get("level")).lower() in ("error", "critical")]
        for task, lines in logs.items()
    }
    assert not any(red.values()), json.dumps(red, indent=1)
    train_info = [line["event"] for line in logs["train"] if line.get("level") == "info"]
    assert any("Created version" in str(event) for event in train_info), train_info[-20:]
