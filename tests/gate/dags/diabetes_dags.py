"""Tests-only regression DAG: scikit-learn's diabetes data, Ridge and an rmse policy (issue 8's user case).

Run by tests/gate/test_regression_gate.py in a subprocess whose ``[core] dags_folder`` is this
directory. The DAG keeps Airflow's default ``render_template_as_native_obj=False``, so the templated
``alpha`` reaches TrainOperator as text and is converted to the ``float`` that ``train`` declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param

from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

HERE = Path(__file__).resolve().parent
MODEL = "diabetes_regressor"
EXPERIMENT = "gate_regression"
SCENARIOS = str(HERE / "diabetes_scenarios.yaml")
#: The user's policy: the candidate's rmse may not be worse than the champion's (first version allowed).
POLICY = {"metrics": {"rmse": {"min_absolute_change": 0.0}}, "first_version": "allow"}


def transform(raw: Any) -> Any:
    return raw


def train(df: Any, alpha: float = 1.0) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(df.drop(columns=["target"]), df["target"])


with DAG(
    dag_id="diabetes_retrain",
    schedule=None,
    catchup=False,
    tags=["test"],
    params={
        "raw_uri": Param("", type="string", description="the diabetes data as Parquet"),
        "alpha": Param(1.0, type="number", description="Ridge regularisation strength"),
    },
):
    featurize = FeaturizeOperator(
        task_id="featurize",
        raw_uri="{{ params.raw_uri }}",
        transform=transform,
        raw_suite=str(HERE / "diabetes_raw_suite.json"),
        experiment_name=EXPERIMENT,
    )
    trained = TrainOperator(
        task_id="train",
        features=featurize.output,
        train=train,
        train_params={"alpha": "{{ params.alpha }}"},
        target_column="target",
        registered_model_name=MODEL,
        task="regression",
        experiment_name=EXPERIMENT,
    )
    evaluate = EvaluateOperator(
        task_id="evaluate", model=trained.output, holdout=trained.output["holdout"], experiment_name=EXPERIMENT
    )
    simulate = SimulateOperator(
        task_id="simulate", model=trained.output, scenarios=SCENARIOS, experiment_name=EXPERIMENT
    )
    gate = ModelGateSensor(
        task_id="gate", model=trained.output, scenarios=SCENARIOS, policy=POLICY, experiment_name=EXPERIMENT
    )
    promote = PromoteModelOperator(task_id="promote", model=trained.output, experiment_name=EXPERIMENT)
    [evaluate, simulate] >> gate >> promote
