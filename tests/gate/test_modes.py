"""The gate's modes against a real MLflow store: poke and reschedule in the worker, deferrable through
ModelGateTrigger (its ``run()`` driven with asyncio here; a whole deferred DAG run is in test_dags.py),
soft_fail, and timeouts that fail closed with the verdict recorded."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.gate.conftest import MODEL, POLICY, SCENARIOS, Baseline, context, gate, recorded_verdict, simulate


def _failures(verdict: dict[str, Any] | None) -> dict[str, str]:
    assert verdict is not None, "the verdict must be recorded"
    return {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}


# --- poke and reschedule -----------------------------------------------------------------------------


def test_failed_verdict_with_soft_fail_skips(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    version = baseline.candidate(scenarios=None)
    with pytest.raises(AirflowSkipException, match="soft_fail"):
        gate(MODEL, version, soft_fail=True).execute(context("gate"))
    assert set(_failures(recorded_verdict(baseline.client, MODEL, version))) == {"scenarios"}


def test_poke_timeout_fails_closed_and_records_the_verdict(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    version = baseline.candidate(scenarios=None)
    sensor = gate(MODEL, version, wait_for_evidence=True, timeout=1, poke_interval=0.2)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(context("gate"))
    failures = _failures(recorded_verdict(baseline.client, MODEL, version))
    assert set(failures) == {"scenarios", "evidence:problem"}
    assert failures["evidence:problem"] == (
        "timed out waiting for evidence: simulate evidence still missing after the sensor's 1s timeout"
    )
    assert baseline.client.get_model_version(MODEL, version).tags["airflow_ml.gate.status"] == "failed"


def test_poke_timeout_with_soft_fail_skips_and_records_the_verdict(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    version = baseline.candidate(scenarios=None)
    sensor = gate(MODEL, version, wait_for_evidence=True, timeout=1, poke_interval=0.2, soft_fail=True)
    with pytest.raises(AirflowSkipException, match="timed out"):
        sensor.execute(context("gate"))
    assert (
        "timed out waiting for evidence"
        in _failures(recorded_verdict(baseline.client, MODEL, version))["evidence:problem"]
    )


def test_waiting_never_hides_present_failing_evidence(baseline: Baseline) -> None:
    """Scenarios still missing, but the evaluation already fails: decide at once, do not wait."""
    from airflow.sdk.exceptions import AirflowFailException

    version = baseline.candidate(scenarios=None)
    policy = json.loads(json.dumps(POLICY))
    policy["metrics"]["accuracy"]["threshold"] = 0.999
    with pytest.raises(AirflowFailException):
        gate(MODEL, version, policy=policy, wait_for_evidence=True, timeout=60).execute(context("gate"))
    assert set(_failures(recorded_verdict(baseline.client, MODEL, version))) == {
        "metric:accuracy:threshold",
        "scenarios",
    }


def test_reschedule_mode_frees_the_slot_while_waiting_then_decides(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowRescheduleException

    version = baseline.candidate(scenarios=None)
    sensor = gate(MODEL, version, mode="reschedule", wait_for_evidence=True, timeout=600, poke_interval=5)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context("gate"))
    assert "airflow_ml.gate.status" not in baseline.client.get_model_version(MODEL, version).tags
    simulate(MODEL, version)
    verdict = sensor.execute(context("gate"))  # the rescheduled try
    assert verdict["passed"] is True
    assert recorded_verdict(baseline.client, MODEL, version)["passed"] is True


# --- deferrable -----------------------------------------------------------------------------------------


def _trigger(version: str, **kwargs: Any) -> Any:
    from airflow_ml_provider.scenarios.spec import load_scenarios
    from airflow_ml_provider.triggers.model_gate import ModelGateTrigger

    kwargs.setdefault("tracking_uri", baseline_uri())
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("deadline", (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat())
    return ModelGateTrigger(
        model_name=MODEL,
        model_version=version,
        scenario_names=load_scenarios(SCENARIOS).names,
        poke_interval=0.3,
        **kwargs,
    )


def baseline_uri() -> str:
    import os

    return os.environ["MLFLOW_TRACKING_URI"]


def test_deferrable_execute_defers_with_a_json_safe_trigger(baseline: Baseline) -> None:
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.exceptions import TaskDeferred

    version = baseline.candidate(scenarios=None)
    sensor = gate(MODEL, version, deferrable=True, wait_for_evidence=True, timeout=120, poke_interval=2)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context("gate"))
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=120 + 60)
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_ml_provider.triggers.model_gate.ModelGateTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs, "trigger kwargs must be plain JSON"
    assert kwargs["model_name"] == MODEL and kwargs["model_version"] == version
    assert kwargs["tracking_uri"] == baseline_uri() and kwargs["poke_interval"] == 2.0
    # The connection's HTTP bounds travel to the triggerer (MLflow's own would retry for minutes).
    assert (kwargs["http_request_timeout"], kwargs["http_request_max_retries"]) == (10, 2)
    assert kwargs["scenario_names"] == ["typical_benign", "typical_malignant", "labelled_cases", "valid_labels"]
    assert kwargs["policy"]["required_suites"] == ["breast_cancer_raw", "breast_cancer_features"]
    deadline = datetime.fromisoformat(kwargs["deadline"])
    assert timedelta(seconds=100) < deadline - datetime.now(timezone.utc) <= timedelta(seconds=120)
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_trigger_waits_until_the_evidence_arrives(baseline: Baseline) -> None:
    version = baseline.candidate(scenarios=None)
    trigger = _trigger(version)
    done: list[tuple[str, ...]] = []
    check = trigger.check

    def counted() -> tuple[str, ...]:
        missing = check()
        done.append(missing)
        return missing

    trigger.check = counted

    async def scenario() -> Any:
        first = asyncio.ensure_future(trigger.run().__anext__())
        while not done:
            await asyncio.sleep(0.05)
        assert done[0] == ("simulate",)
        await asyncio.to_thread(simulate, MODEL, version)
        return await asyncio.wait_for(first, timeout=120)

    event = asyncio.run(scenario())
    assert event.payload["status"] == "ready"
    assert event.payload["checks"] >= 2 and event.payload["missing"] == []


def test_trigger_times_out_at_its_deadline(baseline: Baseline) -> None:
    version = baseline.candidate(scenarios=None)
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()

    async def first_event() -> Any:
        return await asyncio.wait_for(_trigger(version, deadline=deadline).run().__anext__(), timeout=60)

    event = asyncio.run(first_event())
    assert event.payload["status"] == "timeout"
    assert event.payload["missing"] == ["simulate"]
    assert f"waiting for simulate evidence of models:/{MODEL}/{version}" in event.payload["message"]


def test_trigger_fires_at_once_when_present_evidence_fails(baseline: Baseline) -> None:
    version = baseline.candidate(scenarios=None)
    policy = json.loads(json.dumps(POLICY))
    policy["metrics"]["accuracy"]["threshold"] = 0.999

    async def first_event() -> Any:
        return await asyncio.wait_for(_trigger(version, policy=policy).run().__anext__(), timeout=60)

    event = asyncio.run(first_event())
    assert event.payload == {"status": "ready", "checks": 1, "missing": []}


def test_trigger_reports_an_unreachable_mlflow(baseline: Baseline) -> None:
    """The connection's HTTP bounds travel in the trigger's kwargs, so a tracking server that is down
    costs one check seconds (MLflow's own retries would take minutes and outlast this test's wait)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def first_event() -> Any:
        trigger = _trigger(
            "1", tracking_uri=f"http://127.0.0.1:{port}", http_request_timeout=2, http_request_max_retries=0
        )
        return await asyncio.wait_for(trigger.run().__anext__(), timeout=60)

    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    event = asyncio.run(first_event())
    # A triggerer serves many gates: the trigger never repoints MLflow's process-global URIs.
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert event.payload["status"] == "error"
    assert event.payload["message"].startswith(f"MlflowConnectionError: Cannot reach MLflow at http://127.0.0.1:{port}")
    assert "Connection refused" in event.payload["message"]


def test_execute_complete_after_a_trigger_timeout_fails_closed(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

    version = baseline.candidate(scenarios=None)
    event = {"status": "timeout", "checks": 7, "missing": ["simulate"], "message": "timed out at 12:00"}
    with pytest.raises(AirflowSensorTimeout):
        gate(MODEL, version, deferrable=True, timeout=30).execute_complete(context("gate"), event)
    failures = _failures(recorded_verdict(baseline.client, MODEL, version))
    assert failures["evidence:problem"] == (
        "timed out waiting for evidence: simulate evidence still missing after the sensor's 30s timeout "
        "(timed out at 12:00)"
    )
    # soft_fail: the same verdict is recorded, the task is skipped (as Airflow resumes it)
    sensor = gate(MODEL, version, deferrable=True, timeout=30, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event}, context("gate"))


def test_deferral_timeout_backstop_records_the_verdict(baseline: Baseline) -> None:
    from airflow.sdk.bases.operator import TriggerFailureReason
    from airflow.sdk.exceptions import AirflowSensorTimeout

    version = baseline.candidate(scenarios=None)
    with pytest.raises(AirflowSensorTimeout):
        gate(MODEL, version, deferrable=True).resume_execution(
            "__fail__", {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, context("gate")
        )
    failures = _failures(recorded_verdict(baseline.client, MODEL, version))
    assert failures["evidence:problem"] == (
        f"the deferred wait for evidence ended without a decision: {TriggerFailureReason.TRIGGER_TIMEOUT.value}"
    )
