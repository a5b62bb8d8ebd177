"""The weekly retraining of ``breast_cancer_retrain.py``, with its ML steps written as TaskFlow functions.

featurize -> train -> (evaluate, simulate) -> gate -> promote -> predict

``@task.ml_featurize``, ``@task.ml_train`` and ``@task.ml_evaluate`` (registered by this provider: no import
beyond ``airflow.sdk.task``) turn plain functions into FeaturizeOperator, TrainOperator and EvaluateOperator
tasks: the same MLflow runs, step records, fingerprints, lineage and gate evidence as the classic DAG.
The function is the ML; the decorator's arguments are the operator's; the call passes the data reference
first, then the function's params. The gate, promotion and prediction are the classic operators.

Same schedule (weekly cron or drift), params and registered model as the classic DAG: they are two ways to
write one pipeline, so enable one of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task
from breast_cancer import pipeline

from airflow_ml_provider.assets import drift_asset
from airflow_ml_provider.operators.predict import BatchPredictOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

if TYPE_CHECKING:  # annotations only: pandas and numpy are not imported when the DAG is parsed
    import numpy as np
    import pandas as pd

HERE = Path(pipeline.__file__).parent
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)
MODEL_NAME = "breast_cancer_classifier"
MALIGNANT = 0  # the dataset's label for a malignant tumour


@task.ml_featurize(raw_suite=str(HERE / "raw_suite.json"), features_suite=str(HERE / "features_suite.json"))
def featurize(raw: pd.DataFrame, clip_quantile: float = 0.995) -> pd.DataFrame:
    """snake_case feature names, extreme values clipped (breast_cancer.pipeline.transform)."""
    return pipeline.transform(raw, clip_quantile=clip_quantile)


@task.ml_train(target_column=pipeline.TARGET, registered_model_name=MODEL_NAME)
def train(df: pd.DataFrame, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> Any:
    """Standardised logistic regression (breast_cancer.pipeline.train); ``seed`` is the operator's."""
    return pipeline.train(df, C=C, max_iter=max_iter, seed=seed)


@task.ml_evaluate()
def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Beside the built-in metrics: the share of malignant tumours the model misses."""
    malignant = y_true == MALIGNANT
    missed = int((malignant & (y_pred != MALIGNANT)).sum())
    return {"malignant_miss_rate": missed / max(int(malignant.sum()), 1)}


with DAG(
    dag_id="breast_cancer_retrain_taskflow",
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
    # A task's result is an XComArg, resolved when the downstream task runs; typed Any here so that it passes
    # for the dataset and model references the operators take. The decorated functions keep their signatures:
    # a template stands for the value it renders to (a float for C), so it is cast for the type checker.
    features: Any = featurize("{{ params.raw_uri }}")
    model: Any = train(features, C=cast(float, "{{ params.C }}"))
    metrics = evaluate(model, model["holdout"])
    simulate = SimulateOperator(task_id="simulate", model=model, scenarios="{{ params.scenarios }}")
    gate = ModelGateSensor(
        task_id="gate",
        model=model,
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
    promote = PromoteModelOperator(task_id="promote", model=model, alias="champion")
    predict = BatchPredictOperator(task_id="predict", model=f"models:/{MODEL_NAME}@champion", input=features)

    [metrics, simulate] >> gate >> promote >> predict
