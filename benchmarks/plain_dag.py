"""Baseline for benchmarks/parse_time.py: the example retraining DAG built from plain Airflow operators.

Same shape as ``dags_examples/breast_cancer_retrain.py`` (featurize -> train -> (evaluate, simulate)
-> gate -> promote -> predict; same task ids and edges, which parse_time.py checks), same schedule
and params, same user module ``breast_cancer.pipeline``. Only the operators differ: standard-provider
PythonOperator / PythonSensor instead of ours. The callables are stubs: this file exists to be
parsed, not run. Needs ``dags_examples`` on sys.path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import DAG, Param
from breast_cancer import pipeline
from breast_cancer.pipeline import TARGET, train, transform

HERE = Path(pipeline.__file__).parent  # the example's suites and scenarios, wherever this file is copied
DEFAULT_RAW_URI = os.environ.get(
    "BREAST_CANCER_RAW_URI",
    str(Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "data" / "breast_cancer.parquet"),
)
MODEL_NAME = "breast_cancer_classifier"


def _featurize(raw_uri: str, transform: Any, raw_suite: str, features_suite: str) -> dict[str, Any]:
    import pandas as pd

    return {"uri": raw_uri, "rows": len(transform(pd.read_parquet(raw_uri)))}


def _train(features: Any, train: Any, train_params: dict[str, Any], target_column: str, name: str) -> dict:
    return {"model_name": name, "version": "1", "holdout": features}


def _evaluate(model: Any, holdout: Any) -> dict[str, float]:
    return {"accuracy": 1.0}


def _simulate(model: Any, scenarios: str) -> dict[str, bool]:
    return {"passed": True}


def _gate(model: Any, scenarios: str, policy: dict[str, Any]) -> bool:
    return True


def _promote(model: Any, alias: str) -> None:
    return None


def _predict(model: str, input: Any) -> dict[str, Any]:
    return {"model": model, "input": input}


with DAG(
    dag_id="breast_cancer_retrain_plain",
    schedule="0 3 * * 1",  # Mondays 03:00
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
    featurize = PythonOperator(
        task_id="featurize",
        python_callable=_featurize,
        op_kwargs={
            "raw_uri": "{{ params.raw_uri }}",
            "transform": transform,
            "raw_suite": str(HERE / "raw_suite.json"),
            "features_suite": str(HERE / "features_suite.json"),
        },
    )
    train_model = PythonOperator(
        task_id="train",
        python_callable=_train,
        op_kwargs={
            "features": featurize.output,
            "train": train,
            "train_params": {"C": "{{ params.C }}"},
            "target_column": TARGET,
            "name": MODEL_NAME,
        },
    )
    evaluate = PythonOperator(
        task_id="evaluate",
        python_callable=_evaluate,
        op_kwargs={"model": train_model.output, "holdout": train_model.output["holdout"]},
    )
    simulate = PythonOperator(
        task_id="simulate",
        python_callable=_simulate,
        op_kwargs={"model": train_model.output, "scenarios": "{{ params.scenarios }}"},
    )
    gate = PythonSensor(
        task_id="gate",
        python_callable=_gate,
        op_kwargs={
            "model": train_model.output,
            "scenarios": "{{ params.scenarios }}",
            "policy": {
                "metrics": {
                    "accuracy": {"threshold": "{{ params.min_accuracy }}", "min_absolute_change": -0.01},
                    "roc_auc": {"threshold": 0.95},
                },
                "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
                "first_version": "allow",
            },
        },
    )
    promote = PythonOperator(
        task_id="promote",
        python_callable=_promote,
        op_kwargs={"model": train_model.output, "alias": "champion"},
    )

    predict = PythonOperator(
        task_id="predict",
        python_callable=_predict,
        op_kwargs={"model": f"models:/{MODEL_NAME}@champion", "input": featurize.output},
    )

    [evaluate, simulate] >> gate >> promote >> predict
