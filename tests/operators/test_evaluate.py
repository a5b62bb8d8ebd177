"""EvaluateOperator error paths on the session's shared model version (tests/operators/conftest.py).

A failed evaluation must not become evidence: the version's ``airflow_ml.evidence.evaluate`` tag
never points at a failed run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.data.datasets import DatasetError, write_frame
from airflow_ml_provider.hooks.mlflow import MlflowHook
from airflow_ml_provider.model.metrics import CLASSIFICATION_METRICS, UnknownMetricError
from airflow_ml_provider.model.reference import ModelReferenceError
from airflow_ml_provider.operators.evaluate import EvaluateOperator
from airflow_ml_provider.records.tags import evidence_tag
from tests.operators._support import assert_step_failed, assert_step_succeeded, the_step_run
from tests.support import make_context

DAG = "ops_evaluate"


def evaluator(model: Any, holdout: Any, **kwargs: Any) -> EvaluateOperator:
    return EvaluateOperator(task_id="evaluate", model=model, holdout=holdout, **kwargs)


def run_failing(op: EvaluateOperator, error_type: type[BaseException]) -> tuple[dict[str, Any], Any]:
    context = make_context(DAG, op.task_id)
    with pytest.raises(error_type) as excinfo:
        op.execute(context)
    return context, excinfo


def assert_not_evidence(client: Any, trained: dict[str, Any], context: dict[str, Any]) -> None:
    result = trained["result"]
    tags = client.get_model_version(result["model_name"], result["version"]).tags
    failed_run = the_step_run(client, context).info.run_id
    assert tags.get(evidence_tag("evaluate")) != failed_run


def constant_score(y_true: Any, y_pred: Any) -> float:
    return 0.5  # not a dict


def count_errors(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Custom metrics computed with numpy, as users write them: numpy scalars, not Python floats."""
    return {"errors": np.sum(y_true != y_pred), "error_rate": np.float32(np.mean(y_true != y_pred))}


# --- construction --------------------------------------------------------------------------------


def test_unknown_metric_name_at_construction() -> None:
    with pytest.raises(UnknownMetricError) as excinfo:
        evaluator("models:/m/1", "holdout.parquet", metrics=["accuracy", "logloss"])
    message = str(excinfo.value)
    assert "'logloss'" in message and "'accuracy'" not in message.split("built-in")[0]
    assert all(f"'{name}'" in message for name in ("roc_auc", "rmse", "r2"))  # lists what is allowed
    assert "metric_fn" in message


def test_metric_of_the_other_task_at_construction() -> None:
    with pytest.raises(UnknownMetricError) as excinfo:
        evaluator("models:/m/1", "holdout.parquet", metrics=["rmse"], task="classification")
    message = str(excinfo.value)
    assert "'rmse'" in message and "classification" in message
    assert all(f"'{name}'" in message for name in CLASSIFICATION_METRICS)


def test_unknown_task_and_non_callable_metric_fn_at_construction() -> None:
    with pytest.raises(ValueError, match="task must be 'classification' or 'regression', got 'ranking'"):
        evaluator("models:/m/1", "holdout.parquet", task="ranking")
    with pytest.raises(TypeError, match="metric_fn must be a callable"):
        evaluator("models:/m/1", "holdout.parquet", metric_fn={"accuracy": 1.0})


# --- the holdout -----------------------------------------------------------------------------------


def test_holdout_without_target_column(trained: dict[str, Any], tmp_path: Path, client: Any) -> None:
    holdout = pd.read_parquet(Path(trained["result"]["holdout"]["uri"].removeprefix("file://")))
    unlabeled = write_frame(holdout.drop(columns=["target"]), tmp_path, "holdout").to_dict()

    context, excinfo = run_failing(evaluator(trained["result"], unlabeled), DatasetError)

    message = str(excinfo.value)
    assert "'target'" in message and unlabeled["uri"] in message and "holdout dataset" in message
    assert_step_failed(client, context, excinfo.value, "'target'", unlabeled["uri"])
    assert_not_evidence(client, trained, context)


def test_holdout_missing_a_feature_column(trained: dict[str, Any], tmp_path: Path, client: Any) -> None:
    holdout = pd.read_parquet(Path(trained["result"]["holdout"]["uri"].removeprefix("file://")))
    partial = write_frame(holdout.drop(columns=["worst_area"]), tmp_path, "holdout").to_dict()

    context, excinfo = run_failing(evaluator(trained["result"], partial), DatasetError)

    assert "['worst_area']" in str(excinfo.value) and trained["result"]["model_uri"] in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "worst_area")
    assert_not_evidence(client, trained, context)


# --- the model reference ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown version", "unknown model"])
def test_model_reference_that_does_not_exist(trained: dict[str, Any], client: Any, kind: str) -> None:
    name = trained["result"]["model_name"] if kind == "unknown version" else "x"
    uri = f"models:/{name}/9"
    context, excinfo = run_failing(evaluator(uri, trained["result"]["holdout"]), ModelReferenceError)
    assert uri in str(excinfo.value) and "not found" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, uri)


@pytest.mark.parametrize(
    "reference",
    ["models:/breast_cancer_classifier", "models:/m/latest", "runs:/abc/model", {"model_name": "m"}, 3],
    ids=["no-version", "non-numeric", "runs-uri", "mapping-without-version", "int"],
)
def test_malformed_model_reference(trained: dict[str, Any], client: Any, reference: Any) -> None:
    context, excinfo = run_failing(evaluator(reference, trained["result"]["holdout"]), ModelReferenceError)
    message = str(excinfo.value)
    assert message.startswith("model must be") and repr(reference)[:40] in message
    assert "models:/<name>/<version>" in message
    assert_step_failed(client, context, excinfo.value, "model must be")


# --- the user's metric_fn ----------------------------------------------------------------------------


def test_metric_fn_returning_a_non_dict(trained: dict[str, Any], client: Any) -> None:
    op = evaluator(trained["result"], trained["result"]["holdout"], metric_fn=constant_score)
    context, excinfo = run_failing(op, TypeError)
    message = str(excinfo.value)
    assert "metric_fn" in message and "got float" in message and "0.5" in message
    assert_step_failed(client, context, excinfo.value, "metric_fn")
    assert_not_evidence(client, trained, context)


def test_metric_fn_returning_numpy_numbers_is_accepted(trained: dict[str, Any], client: Any) -> None:
    """np.int64 / np.float32 are numbers; a metric_fn written with numpy returns them."""
    op = evaluator(trained["result"], trained["result"]["holdout"], metric_fn=count_errors)
    context = make_context(DAG, op.task_id)
    result = op.execute(context)
    assert isinstance(result["metrics"]["errors"], float)
    assert 0.0 <= result["metrics"]["error_rate"] <= 1.0
    assert_step_succeeded(client, context)


# --- success, against scikit-learn -------------------------------------------------------------------


def test_metrics_match_sklearn_and_bind_evidence(trained: dict[str, Any], client: Any) -> None:
    from sklearn import metrics as skm

    result = trained["result"]
    op = evaluator(result, result["holdout"])
    context = make_context(DAG, op.task_id)
    out = op.execute(context)

    holdout = pd.read_parquet(Path(result["holdout"]["uri"].removeprefix("file://")))
    model = MlflowHook(tracking_uri=client.tracking_uri).load_model(result["model_uri"])
    x, y = holdout.drop(columns=["target"]), holdout["target"]
    predicted, proba = model.predict(x), model.predict_proba(x)
    score = proba[:, 1]
    expected = {
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted),
        "recall": skm.recall_score(y, predicted),
        "f1": skm.f1_score(y, predicted),
        "roc_auc": skm.roc_auc_score(y, score),
        "log_loss": skm.log_loss(y, proba),
    }
    assert out["metrics"] == pytest.approx(expected, abs=1e-12)
    record = assert_step_succeeded(client, context)
    tags = client.get_model_version(result["model_name"], result["version"]).tags
    assert tags[evidence_tag("evaluate")] == record.mlflow_run_id
    assert record.results.holdout_fingerprint == result["holdout"]["fingerprint"]
