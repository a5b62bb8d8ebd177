"""Weekly retraining of the breast cancer classifier, gated and promoted through MLflow.

featurize -> train -> (evaluate, simulate) -> gate -> promote -> predict

After promotion, ``predict`` scores this run's features with whatever version the ``champion``
alias points to then (resolved when the task runs) and writes the predictions with lineage.

Scheduled on its weekly cron *or* on drift: ``breast_cancer_monitor`` emits an event on
``drift_asset(MODEL_NAME)`` when the data the champion scores has drifted, which queues a run here.

Run it once with ``make demo``; trigger it with another ``raw_uri`` to retrain on other data.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param
from breast_cancer.pipeline import TARGET, train, transform

from airflow_ml_provider.assets import drift_asset
from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.predict import BatchPredictOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

HERE = Path(__file__).parent / "breast_cancer"
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)
MODEL_NAME = "breast_cancer_classifier"

with DAG(
    dag_id="breast_cancer_retrain",
    # Mondays 03:00, and whenever the monitor detects drift.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"), assets=[drift_asset(MODEL_NAME)]
    ),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["ml", "example"],
    params={
        "raw_uri": Param(DEFAULT_RAW_URI, type="string", description="Raw data (Parquet or CSV)"),
        "scenarios": Param(str(HERE / "scenarios.yaml"), type="string", description="Must-pass scenarios"),
        "min_accuracy": Param(0.9, type="number", minimum=0, maximum=1, description="Gate: holdout accuracy"),
        "C": Param(1.0, type="number", exclusiveMinimum=0, description="Inverse regularisation strength"),
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
        registered_model_name=MODEL_NAME,
    )
    evaluate = EvaluateOperator(
        task_id="evaluate", model=train_model.output, holdout=train_model.output["holdout"]
    )
    simulate = SimulateOperator(
        task_id="simulate", model=train_model.output, scenarios="{{ params.scenarios }}"
    )
    gate = ModelGateSensor(
        task_id="gate",
        model=train_model.output,
        scenarios="{{ params.scenarios }}",
        policy={
            "metrics": {
                "accuracy": {"threshold": "{{ params.min_accuracy }}", "min_absolute_change": -0.01},
                "roc_auc": {"threshold": 0.95},
            },
            "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
            "first_version": "allow",
        },
    )
    promote = PromoteModelOperator(task_id="promote", model=train_model.output, alias="champion")
    # Score the latest data with the champion. The raw columns are not the model's feature
    # columns (spaces vs snake_case), so score the features this run derived from the raw data.
    predict = BatchPredictOperator(task_id="predict", model=f"models:/{MODEL_NAME}@champion", input=featurize.output)

    [evaluate, simulate] >> gate >> promote >> predict
