"""Tests-only DAGs for the gate's modes: deferrable, soft_fail and human approval.

Run by tests/gate/test_dags.py in a subprocess whose ``[core] dags_folder`` is this directory
(``dag.test()`` only runs DAGs found there). The model version under decision comes from the run
conf (``{"model": "models:/<name>/<version>"}``), prepared by the test against the shared MLflow store.
"""

from __future__ import annotations

from pathlib import Path

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param

from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

SCENARIOS = str(Path(__file__).resolve().parents[3] / "dags_examples" / "breast_cancer" / "scenarios.yaml")
EXPERIMENT = "gate_tests"
POLICY = {
    "metrics": {
        "accuracy": {"threshold": 0.9, "min_absolute_change": -0.01},
        "roc_auc": {"threshold": 0.95},
    },
    "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
    "first_version": "allow",
}
PARAMS = {"model": Param("", type="string", description="models:/<name>/<version> under decision")}


def _gate(**kwargs):
    kwargs.setdefault("policy", POLICY)
    return ModelGateSensor(
        task_id="gate",
        model="{{ params.model }}",
        scenarios=SCENARIOS,
        experiment_name=EXPERIMENT,
        poke_interval=1,
        timeout=300,
        **kwargs,
    )


def _promote():
    return PromoteModelOperator(task_id="promote", model="{{ params.model }}", experiment_name=EXPERIMENT)


with DAG(dag_id="gate_deferrable", schedule=None, catchup=False, params=PARAMS, tags=["test"]):
    _gate(deferrable=True, wait_for_evidence=True) >> _promote()

with DAG(dag_id="gate_soft_fail", schedule=None, catchup=False, params=PARAMS, tags=["test"]):
    _gate(soft_fail=True) >> _promote()

with DAG(dag_id="gate_approval", schedule=None, catchup=False, params=PARAMS, tags=["test"]):
    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote {{ params.model }}?",
        body="Evaluation and scenario evidence are in MLflow. Type the version you approve.",
        params={
            "model_version": Param("", type="string", description="the version you approve"),
            "comment": Param("", type="string"),
        },
    )
    gate = _gate(policy={**POLICY, "require_approval": True}, approval_task_id="approve")
    approve >> gate >> _promote()
