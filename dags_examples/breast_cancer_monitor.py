"""Watch the breast cancer classifier in production: score each day's batch and check it for drift.

featurize (the batch) -> predict (models:/breast_cancer_classifier@champion) -> drift

``drift`` compares the batch's features and the champion's predictions with the rows the champion
was trained on (found through its training record and verified by fingerprint). When a feature has
drifted it succeeds and emits an event on ``drift_asset(MODEL_NAME)``; ``breast_cancer_retrain`` is
scheduled on its weekly cron *or* that asset, so drift queues a retraining run without anyone looking.

Trigger it with another ``batch_uri`` to check another batch (``make demo`` writes one with a shifted
feature: ``python -m dags_examples.breast_cancer.data OUT --batch-of RAW --shift "mean radius=0.5"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Param
from breast_cancer.pipeline import transform

from airflow_ml_provider.operators.drift import DriftOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.predict import BatchPredictOperator

HERE = Path(__file__).parent / "breast_cancer"
MODEL_NAME = "breast_cancer_classifier"
DEFAULT_BATCH_URI = os.environ.get(
    "BREAST_CANCER_BATCH_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "batch.parquet"),
)

with DAG(
    dag_id="breast_cancer_monitor",
    schedule="@daily",
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["ml", "example", "monitoring"],
    params={"batch_uri": Param(DEFAULT_BATCH_URI, type="string", description="Today's batch (Parquet or CSV)")},
) as dag:
    featurize = FeaturizeOperator(
        task_id="featurize",
        raw_uri="{{ params.batch_uri }}",
        transform=transform,
        raw_suite=str(HERE / "raw_suite.json"),
        features_suite=str(HERE / "features_suite.json"),
    )
    champion = f"models:/{MODEL_NAME}@champion"
    predict = BatchPredictOperator(task_id="predict", model=champion, input=featurize.output)
    drift = DriftOperator(
        task_id="drift",
        model=champion,
        current=featurize.output,
        predictions=predict.output,
        policy={"min_rows": 100},
        on_drift="emit",
    )
