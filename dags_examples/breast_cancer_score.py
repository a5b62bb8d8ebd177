"""Batch-score the latest breast cancer data whenever a new champion is promoted.

featurize -> predict (models:/breast_cancer_classifier@champion)

Scheduled on the champion asset: ``PromoteModelOperator`` in ``breast_cancer_retrain`` emits an event on
``champion_asset(MODEL_NAME)`` each time it moves the ``champion`` alias (never for a refused or no-op
promotion), and Airflow then queues a run of this DAG. ``predict`` resolves the alias when it runs and
records the version it scored with in every prediction row. Trigger it by hand to score another batch
(``raw_uri``).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Param
from breast_cancer.pipeline import transform

from airflow_ml_provider.assets import champion_asset
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.predict import BatchPredictOperator

HERE = Path(__file__).parent / "breast_cancer"
MODEL_NAME = "breast_cancer_classifier"
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)

with DAG(
    dag_id="breast_cancer_score",
    schedule=[champion_asset(MODEL_NAME)],
    catchup=False,
    max_active_runs=1,
    tags=["ml", "example"],
    params={"raw_uri": Param(DEFAULT_RAW_URI, type="string", description="Data to score (Parquet or CSV)")},
) as dag:
    featurize = FeaturizeOperator(
        task_id="featurize",
        raw_uri="{{ params.raw_uri }}",
        transform=transform,
        raw_suite=str(HERE / "raw_suite.json"),
        features_suite=str(HERE / "features_suite.json"),
    )
    predict = BatchPredictOperator(task_id="predict", model=f"models:/{MODEL_NAME}@champion", input=featurize.output)
