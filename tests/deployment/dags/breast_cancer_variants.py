"""Test variant of the example DAG for the deployment tests: the same pipeline and the same model
name, but runs may overlap (``max_active_runs=8``, so promotions race) and every task is retried once
(so a killed worker's task runs again on the other worker).

The gate keeps the example's thresholds but no minimum change against the champion: the racing runs
train with different ``C`` and each must pass on its own merits.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Param
from breast_cancer.pipeline import TARGET, train, transform

from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

HERE = Path(__file__).parent / "breast_cancer"

with DAG(
    dag_id="breast_cancer_retrain_concurrent",
    schedule=None,
    max_active_runs=8,
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=2)},
    params={
        "raw_uri": Param(os.environ["BREAST_CANCER_RAW_URI"], type="string"),
        "C": Param(1.0, type="number", exclusiveMinimum=0),
    },
) as dag:
    featurize = FeaturizeOperator(
        task_id="featurize",
        raw_uri="{{ params.raw_uri }}",
        transform=transform,
        raw_suite=str(HERE / "raw_suite.json"),
        features_suite=str(HERE / "features_suite.json"),
    )
    train_model = TrainOperator(
        task_id="train",
        features=featurize.output,
        train=train,
        train_params={"C": "{{ params.C }}"},
        target_column=TARGET,
        registered_model_name="breast_cancer_classifier",
    )
    evaluate = EvaluateOperator(task_id="evaluate", model=train_model.output, holdout=train_model.output["holdout"])
    simulate = SimulateOperator(task_id="simulate", model=train_model.output, scenarios=str(HERE / "scenarios.yaml"))
    gate = ModelGateSensor(
        task_id="gate",
        model=train_model.output,
        scenarios=str(HERE / "scenarios.yaml"),
        policy={
            "metrics": {"accuracy": {"threshold": 0.9}, "roc_auc": {"threshold": 0.95}},
            "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
            "first_version": "allow",
        },
    )
    promote = PromoteModelOperator(task_id="promote", model=train_model.output, alias="champion")
    [evaluate, simulate] >> gate >> promote
