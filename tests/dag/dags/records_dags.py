"""Tests-only DAGs for what the records say: the DAG-run parent MLflow run's status and code identity.

Run by tests/dag/test_records_in_dag.py in a subprocess whose ``[core] dags_folder`` is this directory.
``transform`` is defined here, in the DAG file, which Airflow imports under an internal module name;
``train`` lives in the helper module ``ml_steps/pipeline.py`` of this folder.

- ``records_retrain``: featurize -> train -> (evaluate, simulate) -> gate. ``flaky_marker`` makes the
  first try of featurize fail (it retries once); ``min_accuracy`` sets the gate's threshold.
- ``records_simulate_fails_first`` / ``records_simulate_fails_last``: evaluate and simulate in a fixed
  order (the second runs whatever the first did), simulate failing on a scenario file that does not exist.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param
from ml_steps.pipeline import TARGET, train

from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

EXAMPLE = Path(__file__).resolve().parents[3] / "dags_examples" / "breast_cancer"
SCENARIOS, RAW_SUITE = str(EXAMPLE / "scenarios.yaml"), str(EXAMPLE / "raw_suite.json")
MODEL = "records_model"
PARAMS = {
    "raw_uri": Param("", type="string"),
    "flaky_marker": Param("", type="string", description="a file; featurize fails once while it is absent"),
    "min_accuracy": Param(0.5, type="number"),
    "scenarios": Param(SCENARIOS, type="string"),
}


def transform(raw: Any, flaky_marker: str = "") -> Any:
    """snake_case feature names; with ``flaky_marker``, the first call fails (a transient fault)."""
    if flaky_marker and not Path(flaky_marker).exists():
        Path(flaky_marker).touch()
        raise RuntimeError("transient failure on the first try (flaky_marker)")
    features = raw.rename(columns=lambda c: re.sub(r"[^0-9a-z]+", "_", c.strip().lower()).strip("_"))
    features[TARGET] = features[TARGET].astype("int64")
    return features


def _steps() -> tuple[Any, Any, Any, Any]:
    featurize = FeaturizeOperator(
        task_id="featurize",
        raw_uri="{{ params.raw_uri }}",
        transform=transform,
        transform_params={"flaky_marker": "{{ params.flaky_marker }}"},
        raw_suite=RAW_SUITE,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
    trained = TrainOperator(
        task_id="train", features=featurize.output, train=train, target_column=TARGET, registered_model_name=MODEL
    )
    evaluate = EvaluateOperator(task_id="evaluate", model=trained.output, holdout=trained.output["holdout"])
    simulate = SimulateOperator(task_id="simulate", model=trained.output, scenarios="{{ params.scenarios }}")
    featurize >> trained
    return trained, evaluate, simulate, featurize


with DAG(dag_id="records_retrain", schedule=None, catchup=False, params=PARAMS, render_template_as_native_obj=True):
    trained, evaluate, simulate, _ = _steps()
    gate = ModelGateSensor(
        task_id="gate",
        model=trained.output,
        scenarios="{{ params.scenarios }}",
        policy={
            "metrics": {"accuracy": {"threshold": "{{ params.min_accuracy }}"}},
            "required_suites": ["breast_cancer_raw"],
            "first_version": "allow",
        },
    )
    trained >> [evaluate, simulate] >> gate

for name, first_is_simulate in (("records_simulate_fails_first", True), ("records_simulate_fails_last", False)):
    with DAG(dag_id=name, schedule=None, catchup=False, params=PARAMS, render_template_as_native_obj=True):
        trained, evaluate, simulate, _ = _steps()
        first, second = (simulate, evaluate) if first_is_simulate else (evaluate, simulate)
        second.trigger_rule = "all_done"  # runs after the first whatever its outcome: a fixed finishing order
        trained >> first >> second
