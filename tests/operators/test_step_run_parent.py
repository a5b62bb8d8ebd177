"""The DAG-run parent MLflow run while its steps run one after another (records/step_run.py): FINISHED
once a step closes with every step done, RUNNING again while the next step runs, and a param changed
within a step refused when logged. A real MLflow SQLite store, the step run opened as the operators open it."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_ml_provider.hooks.mlflow import MlflowHook
from airflow_ml_provider.records.step_run import step_run
from tests.support import make_context

DAG = "ops_step_run_parent"


def test_the_parent_reopens_while_a_later_step_runs_and_finishes_after_it(mlflow_client: Any) -> None:
    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    first = make_context(DAG, "first")
    with step_run(hook, DAG, first, "featurize", None) as run:
        parent = run.parent_run_id
        assert mlflow_client.get_run(parent).info.status == "RUNNING"
    assert mlflow_client.get_run(parent).info.status == "FINISHED"

    second = make_context(DAG, "second", run_id=first["ti"].run_id)
    with step_run(hook, DAG, second, "train", None) as run:
        assert run.parent_run_id == parent
        assert mlflow_client.get_run(parent).info.status == "RUNNING", "a step is running: the parent is open"
        run.log_params({"C": 1.0})
        run.log_metrics({"accuracy": 0.9})
        assert mlflow_client.get_run(run.run_id).data.metrics == {}, "sent when the step closes"
    assert mlflow_client.get_run(parent).info.status == "FINISHED"
    data = mlflow_client.get_run(run.run_id).data
    assert data.params["C"] == "1.0" and data.metrics["accuracy"] == 0.9


def test_a_param_changed_within_a_step_is_refused_when_logged(mlflow_client: Any) -> None:
    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    with pytest.raises(ValueError, match="param 'C' was already logged as '1.0'"):
        with step_run(hook, DAG, make_context(DAG, "changes"), "train", None) as run:
            run.log_params({"C": 1.0})
            run.log_params({"C": 1.0})  # the same value again is fine
            run.log_params({"C": 2.0})
    [failed] = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name(DAG).experiment_id],
        "tags.`airflow.task_id` = 'changes'",
    )
    assert failed.info.status == "FAILED" and failed.data.params["C"] == "1.0"
