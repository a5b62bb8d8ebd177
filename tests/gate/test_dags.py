"""Whole DAG runs of the gate's modes with ``dag.test()``: deferrable, soft_fail, human approval.

``dag.test()`` only runs DAGs found in ``[core] dags_folder``, which tests/conftest.py points at the
example DAGs; these run in a subprocess whose dags folder is tests/gate/dags, sharing the test
session's Airflow DB and MLflow store. ``dag.test()`` runs a deferred task's trigger inline, so the
deferrable gate really goes through ModelGateTrigger; a human-in-the-loop task waits in
``awaiting_input`` until a response arrives from outside, which the test sends through Airflow's own
REST API (the same endpoint the UI's "Required actions" page uses), as user ``alice``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.gate.conftest import Baseline, recorded_verdict, simulate
from tests.support import ROOT, champion

DAGS_FOLDER = Path(__file__).parent / "dags"
MODEL = "gate_dag_modes"
pytestmark = pytest.mark.dag


class DagRun:
    """``python -m tests.gate.run_dag`` in the background, its output collected line by line."""

    def __init__(self, dag_id: str, conf: dict[str, Any]) -> None:
        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER), "PYTHONUNBUFFERED": "1"}
        self.started = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.gate.run_dag", dag_id, json.dumps(conf)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"the DAG run ended before {what}:\n{self.output[-6000:]}")
            if time.time() > deadline:
                self.proc.kill()
                raise AssertionError(f"timed out waiting for {what}:\n{self.output[-6000:]}")
            time.sleep(0.5)

    def result(self, timeout: float = 600) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=10)
        results = [line for line in self.lines if line.startswith("RESULT ")]
        assert results, f"no RESULT line (exit {self.proc.returncode}):\n{self.output[-6000:]}"
        return json.loads(results[-1][len("RESULT ") :])


def _trigger_rows() -> list[Any]:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        return [
            (t.id, t.classpath)
            for t in session.query(Trigger).all()
            if t.classpath == "airflow_ml_provider.triggers.model_gate.ModelGateTrigger"
        ]


def test_deferrable_gate_waits_in_the_trigger_until_evidence_arrives(baseline: Baseline) -> None:
    version = baseline.candidate(MODEL, scenarios=None)  # no scenario evidence yet
    before = set(_trigger_rows())
    run = DagRun("gate_deferrable", {"model": f"models:/{MODEL}/{version}"})
    run.wait_until(
        lambda: any("Waiting for simulate evidence" in line for line in run.lines),
        "the trigger to find the scenario evidence missing",
    )
    assert set(_trigger_rows()) - before, "the gate deferred to ModelGateTrigger (a trigger row was written)"
    simulate(MODEL, version)  # the evidence arrives while the trigger waits

    result = run.result()

    assert result["tasks"] == {"gate": "success", "promote": "success"}, run.output[-6000:]
    event = [line for line in run.lines if "ModelGateTrigger fired" in line]
    assert event, run.output[-6000:]
    assert "'status': 'ready'" in event[-1]
    checks = int(event[-1].split("'checks': ")[1].split(",")[0].rstrip("}"))
    assert checks >= 2, event[-1]
    verdict = recorded_verdict(baseline.client, MODEL, version)
    assert verdict is not None and verdict["passed"] is True
    assert champion(baseline.client, MODEL) == version


def test_soft_fail_skips_the_gate_and_promotion(baseline: Baseline) -> None:
    version = baseline.candidate(f"{MODEL}_soft", scenarios=None)  # fails: no scenario evidence

    result = DagRun("gate_soft_fail", {"model": f"models:/{MODEL}_soft/{version}"}).result()

    assert result["tasks"] == {"gate": "skipped", "promote": "skipped"}
    verdict = recorded_verdict(baseline.client, f"{MODEL}_soft", version)
    assert verdict is not None and verdict["passed"] is False, "a skipped gate still records its verdict"
    assert {c["name"] for c in verdict["checks"] if not c["passed"]} == {"scenarios"}
    assert champion(baseline.client, f"{MODEL}_soft") is None


def _respond(run_id: str, body: dict[str, Any], user: str = "alice") -> Any:
    """PATCH the HITL response through Airflow's REST API, authenticated as ``user``."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=user, role="admin"))
    with TestClient(app) as client:
        return client.patch(
            f"/api/v2/dags/gate_approval/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


def _awaiting_run_id(dag_id: str, task_id: str) -> str | None:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id, state="awaiting_input").all()
        return tis[-1].run_id if tis else None


@pytest.mark.parametrize("named", ["this version", "another version"])
def test_human_approval_through_airflow_hitl(baseline: Baseline, named: str) -> None:
    model = f"{MODEL}_approval_{'ok' if named == 'this version' else 'other'}"
    version = baseline.candidate(model)
    run = DagRun("gate_approval", {"model": f"models:/{model}/{version}"})
    run.wait_until(lambda: _awaiting_run_id("gate_approval", "approve") is not None, "the approval task to wait")
    run_id = _awaiting_run_id("gate_approval", "approve")
    approved_version = version if named == "this version" else str(int(version) + 1)

    response = _respond(
        run_id,
        {"chosen_options": ["Approve"], "params_input": {"model_version": approved_version, "comment": "ship it"}},
    )
    assert response.status_code == 200, response.text
    result = run.result()

    verdict = recorded_verdict(baseline.client, model, version)
    assert verdict is not None
    checks = {c["name"]: c for c in verdict["checks"]}
    if named == "this version":
        assert result["tasks"] == {"approve": "success", "gate": "success", "promote": "success"}
        assert checks["binding:approval"]["passed"] is True
        assert checks["approval"]["passed"] is True
        assert checks["approval"]["reason"].startswith("approved by alice at ")
        assert checks["approval"]["reason"].endswith(": 'ship it'")
        assert champion(baseline.client, model) == version
    else:
        assert result["tasks"] == {"approve": "success", "gate": "failed", "promote": "upstream_failed"}
        assert [c["name"] for c in verdict["checks"] if not c["passed"]] == ["binding:approval"]
        assert checks["binding:approval"]["reason"] == (
            f"the approval is for model version '{approved_version}', not version '{version}' under decision"
        )
        assert champion(baseline.client, model) is None
