"""Human approval: what Airflow's HITL operators push to XCom, mapped onto the gate's ApprovalEvidence.

The XCom values here are made by the real ``ApprovalOperator.execute_complete`` from the event the
API server builds when a person responds (``HITLDetail.as_resume_event_payload``), then passed
through XCom's own serialisation, so they have exactly the shape the gate pulls. A whole DAG run
with a real response through Airflow's REST API is in test_dags.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_ml_provider.gate import Evidence, GatePolicy, Subject, decide
from airflow_ml_provider.gate.gather import approval_from_hitl

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
ALICE = {"id": "alice", "name": "alice"}


def hitl_xcom(option: str, params: dict[str, Any], user: dict[str, str] | None = ALICE) -> Any:
    """What ApprovalOperator returns for this response, after an XCom round trip."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk import Param
    from airflow.sdk.serde import deserialize, serialize

    operator = ApprovalOperator(
        task_id="approve",
        subject="Promote?",
        params={"model_version": Param("", type="string"), "comment": Param("", type="string")},
    )
    event = {
        "chosen_options": [option],
        "params_input": params,
        "responded_at": NOW - timedelta(minutes=3),
        "responded_by_user": user,
        "timedout": user is None,
    }
    returned = operator.execute_complete(context={"ti": None, "task": operator}, event=event)
    return deserialize(json.loads(json.dumps(serialize(returned))))


def verdict_checks(value: Any, version: str = "7") -> dict[str, tuple[bool, str]]:
    approval, problems = approval_from_hitl(value, "approve")
    evidence = Evidence(
        subject=Subject("m", version, "blake3:x"),
        training_dataset_fingerprints=("blake3:d",),
        approval=approval,
        problems=tuple(problems),
    )
    # (a policy must check some evidence besides the approval: GatePolicy refuses one that "checks nothing")
    policy = GatePolicy(require_scenarios=False, require_approval=True)
    verdict = decide(policy, evidence, NOW)
    return {c.name: (c.passed, c.reason) for c in verdict.checks}


def test_the_xcom_shape_of_a_hitl_response() -> None:
    value = hitl_xcom("Approve", {"model_version": "7", "comment": "ship it"})
    assert set(value) == {"chosen_options", "params_input", "responded_at", "responded_by_user"}
    assert value["chosen_options"] == ["Approve"]
    assert value["responded_by_user"] == ALICE
    assert value["responded_at"] == NOW - timedelta(minutes=3)


def test_approval_naming_this_version_passes_and_records_who_and_when() -> None:
    approval, problems = approval_from_hitl(hitl_xcom("Approve", {"model_version": "7", "comment": "ok"}), "approve")
    assert problems == []
    assert approval is not None
    assert (approval.approved, approval.approver, approval.model_version, approval.comment) == (
        True,
        "alice",
        "7",
        "ok",
    )
    assert approval.decided_at == NOW - timedelta(minutes=3)
    checks = verdict_checks(hitl_xcom("Approve", {"model_version": "7", "comment": "ok"}))
    assert checks["binding:approval"] == (True, "the approval names version 7")
    assert checks["approval"] == (True, "approved by alice at 2026-05-04 11:57:00 UTC: 'ok'")


def test_rejection_fails() -> None:
    checks = verdict_checks(hitl_xcom("Reject", {"model_version": "7", "comment": "drift"}))
    assert checks["approval"] == (False, "rejected by alice at 2026-05-04 11:57:00 UTC: 'drift'")


def test_approval_of_another_version_fails() -> None:
    checks = verdict_checks(hitl_xcom("Approve", {"model_version": "6", "comment": ""}))
    assert checks["binding:approval"] == (
        False,
        "the approval is for model version '6', not version '7' under decision",
    )


def test_approval_that_names_no_version_fails_closed() -> None:
    checks = verdict_checks(hitl_xcom("Approve", {"model_version": "", "comment": ""}))
    assert checks["evidence:problem"] == (
        False,
        "the approval from approval task 'approve' does not name the model version: the approver must enter "
        "the version in the 'model_version' field",
    )


def test_timeout_default_is_not_a_person() -> None:
    checks = verdict_checks(hitl_xcom("Approve", {"model_version": "7", "comment": ""}, user=None))
    passed, reason = checks["approval"]
    assert not passed
    assert reason.startswith("approved at 2026-05-04 11:57:00 UTC but no approver is recorded")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "no response from approval task 'approve' in XCom: did it run, and does the gate depend on it?"),
        ("Approve", "approval task 'approve' returned str, not a human-in-the-loop response"),
        ({"chosen_options": ["Approve"], "params_input": {"model_version": "7"}}, "approval task 'approve': "),
    ],
)
def test_missing_or_malformed_responses_fail_closed(value: Any, problem: str) -> None:
    checks = verdict_checks(value)
    assert checks["evidence:problem"][0] is False
    assert checks["evidence:problem"][1].startswith(problem)
    assert checks["approval"] == (False, "no human approval recorded: the policy requires one")
