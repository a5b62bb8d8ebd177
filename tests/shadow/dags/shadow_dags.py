"""Tests-only DAGs for shadow evidence (tests/shadow/test_shadow_evidence.py, run with ``dag.test()``).

``shadow_predict``: the champion scores a batch with the challenger alias as its live shadow, on half the rows.
``shadow_replay_gate``: replay the champion's production inputs with a candidate, then gate it on that evidence.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param

from airflow_ml_provider.operators.predict import BatchPredictOperator
from airflow_ml_provider.operators.shadow import ShadowReplayOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

MODEL = "shadow_clf"
EXPERIMENT = "shadow_tests"
#: Only shadow evidence is judged: 150 rows needs two live runs of 100 sampled rows each.
POLICY = {
    "require_data_expectations": False,
    "require_scenarios": False,
    "shadow": {"min_rows": 150, "min_agreement": 0.9, "max_latency_ratio": 50.0},
}

with DAG(
    dag_id="shadow_predict",
    schedule=None,
    catchup=False,
    params={"batch": Param("", type="string", description="features to score")},
    tags=["test"],
):
    BatchPredictOperator(
        task_id="predict",
        model=f"models:/{MODEL}@champion",
        input="{{ params.batch }}",
        shadow=f"models:/{MODEL}@challenger",
        shadow_fraction=0.5,
        experiment_name=EXPERIMENT,
    )

with DAG(
    dag_id="shadow_replay_gate",
    schedule=None,
    catchup=False,
    params={"model": Param("", type="string", description="models:/<name>/<version> of the candidate")},
    tags=["test"],
):
    replay = ShadowReplayOperator(
        task_id="replay", model="{{ params.model }}", max_rows=1000, experiment_name=EXPERIMENT
    )
    gate = ModelGateSensor(
        task_id="gate", model="{{ params.model }}", policy=POLICY, experiment_name=EXPERIMENT, timeout=60
    )
    replay >> gate
