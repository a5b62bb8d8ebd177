"""metrics.py against scikit-learn's implementations, on random data (several seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_ml_provider.model.metrics import (
    BUILTIN_METRICS,
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    UnknownMetricError,
    classification_metrics,
    default_metrics,
    regression_metrics,
    score_model,
    validate_metric_names,
)

TOL = 1e-12
SEEDS = range(5)


def binary_data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    score = np.clip(0.35 * y_true + rng.random(n) * 0.8, 0, 1)
    score = np.round(score, 2)  # ties, which ROC AUC must average
    return y_true, (score > 0.5).astype(int), score


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_classification_matches_sklearn(seed: int) -> None:
    y_true, y_pred, score = binary_data(seed)
    proba = np.column_stack([1 - score, score])
    ours = classification_metrics(CLASSIFICATION_METRICS, y_true, y_pred, score, proba)
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred),
        "recall": skm.recall_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred),
        "roc_auc": skm.roc_auc_score(y_true, score),
        "log_loss": skm.log_loss(y_true, proba),  # scores of exactly 0 and 1 are clipped, as sklearn does
    }
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert abs(ours[name] - value) <= TOL, (name, ours[name], value)


@pytest.mark.parametrize("seed", SEEDS)
def test_string_labels_use_the_larger_label_as_positive(seed: int) -> None:
    """Labels as a pandas column holds them (object arrays), as EvaluateOperator passes them."""
    import pandas as pd

    y_true, y_pred, score = binary_data(seed)
    labels = np.array(["benign", "malignant"], dtype=object)
    t, p = pd.Series(labels[y_true]), labels[y_pred]
    ours = classification_metrics(CLASSIFICATION_METRICS, t, p, score)
    assert abs(ours["precision"] - skm.precision_score(t, p, pos_label="malignant")) <= TOL
    assert abs(ours["recall"] - skm.recall_score(t, p, pos_label="malignant")) <= TOL
    assert abs(ours["f1"] - skm.f1_score(t, p, pos_label="malignant")) <= TOL
    assert abs(ours["roc_auc"] - skm.roc_auc_score(t, score)) <= TOL


def test_string_labels_as_numpy_unicode_arrays() -> None:
    """The same labels as numpy str arrays (what np.array(["a", "b"]) gives) must work too."""
    y_true, y_pred, score = binary_data(0)
    labels = np.array(["benign", "malignant"])
    t, p = labels[y_true], labels[y_pred]
    ours = classification_metrics(CLASSIFICATION_METRICS, t, p, score)
    assert abs(ours["f1"] - skm.f1_score(t, p, pos_label="malignant")) <= TOL
    assert abs(ours["roc_auc"] - skm.roc_auc_score(t, score)) <= TOL


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_is_macro_averaged_like_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 400)
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, 4, 400))
    ours = classification_metrics(CLASSIFICATION_METRICS, y_true, y_pred, None)
    assert abs(ours["accuracy"] - skm.accuracy_score(y_true, y_pred)) <= TOL
    assert abs(ours["precision"] - skm.precision_score(y_true, y_pred, average="macro")) <= TOL
    assert abs(ours["recall"] - skm.recall_score(y_true, y_pred, average="macro")) <= TOL
    assert abs(ours["f1"] - skm.f1_score(y_true, y_pred, average="macro")) <= TOL
    assert np.isnan(ours["roc_auc"])  # not defined for more than two classes


def test_undefined_precision_is_zero_like_sklearn() -> None:
    """No positive prediction: precision is 0/0, reported as 0 (sklearn's zero_division=0)."""
    y_true, y_pred = np.array([0, 1, 1, 0]), np.array([0, 0, 0, 0])
    ours = classification_metrics(["precision", "recall", "f1"], y_true, y_pred, None)
    assert ours == {
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
    }


def test_roc_auc_with_one_class_is_nan() -> None:
    assert np.isnan(
        classification_metrics(["roc_auc"], np.ones(5), np.ones(5), np.linspace(0, 1, 5))["roc_auc"]
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(10, 3, 250)
    y_pred = y_true + rng.normal(0, 1.5, 250)
    ours = regression_metrics(REGRESSION_METRICS, y_true, y_pred)
    expected = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "mse": skm.mean_squared_error(y_true, y_pred),
        "r2": skm.r2_score(y_true, y_pred),
    }
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
        assert abs(ours[name] - value) <= TOL, (name, ours[name], value)


def test_only_requested_metrics_are_computed() -> None:
    y_true, y_pred, score = binary_data(0)
    assert set(classification_metrics(["f1"], y_true, y_pred, score)) == {"f1"}
    assert set(regression_metrics(["mae"], y_true * 1.0, y_pred * 1.0)) == {"mae"}


# --- metric names -----------------------------------------------------------------------------------


def test_validate_metric_names() -> None:
    validate_metric_names(BUILTIN_METRICS)
    validate_metric_names(CLASSIFICATION_METRICS, "classification")
    validate_metric_names(REGRESSION_METRICS, "regression")
    with pytest.raises(UnknownMetricError) as excinfo:
        validate_metric_names(["accuracy", "auc", "mape"])
    message = str(excinfo.value)
    assert "['auc', 'mape']" in message and str(list(BUILTIN_METRICS)) in message
    with pytest.raises(UnknownMetricError, match=r"\['r2'\] for classification task"):
        validate_metric_names(["accuracy", "r2"], "classification")
    assert default_metrics("classification") == CLASSIFICATION_METRICS
    assert default_metrics("regression") == REGRESSION_METRICS


# --- score_model with a real model -------------------------------------------------------------------


def fitted_classifier(seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, 200) > 0).astype(int)
    return LogisticRegression().fit(x[:150], y[:150]), x[150:], y[150:]


def test_score_model_uses_predict_proba_for_roc_auc() -> None:
    model, x, y = fitted_classifier()
    ours = score_model(model, x, y, "classification", list(CLASSIFICATION_METRICS))
    assert abs(ours["roc_auc"] - skm.roc_auc_score(y, model.predict_proba(x)[:, 1])) <= TOL
    assert abs(ours["accuracy"] - skm.accuracy_score(y, model.predict(x))) <= TOL


def test_score_model_adds_custom_metrics() -> None:
    model, x, y = fitted_classifier()
    out = score_model(
        model, x, y, "classification", ["accuracy"], lambda t, p: {"mcc": skm.matthews_corrcoef(t, p)}
    )
    assert set(out) == {"accuracy", "mcc"} and isinstance(out["mcc"], float)


@pytest.mark.parametrize(
    ("returned", "named"),
    [(0.5, "float"), ([("a", 1.0)], "list"), ({"a": "high"}, "'high'"), (None, "NoneType")],
)
def test_score_model_rejects_metric_fn_not_returning_numbers(returned: Any, named: str) -> None:
    model, x, y = fitted_classifier()
    with pytest.raises(TypeError) as excinfo:
        score_model(model, x, y, "classification", ["accuracy"], lambda t, p: returned)
    assert "metric_fn must return a dict of metric name -> number" in str(excinfo.value)
    assert named in str(excinfo.value)


def test_score_model_accepts_numpy_numbers_from_metric_fn() -> None:
    """``np.sum(...)`` is an np.int64 and ``np.float32`` is a float32: both are numbers (numbers.Real)."""
    model, x, y = fitted_classifier()
    out = score_model(
        model,
        x,
        y,
        "classification",
        ["accuracy"],
        lambda t, p: {"errors": np.sum(t != p), "rate": np.float32(np.mean(t != p))},
    )
    assert out["errors"] == float(np.sum(y != model.predict(x)))
    assert isinstance(out["rate"], float)


# --- log_loss and the direction table ----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_log_loss_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 400)
    proba = rng.dirichlet(np.ones(4), 400)
    y_pred = proba.argmax(axis=1)
    ours = classification_metrics(["log_loss"], y_true, y_pred, None, proba)
    assert abs(ours["log_loss"] - skm.log_loss(y_true, proba, labels=[0, 1, 2, 3])) <= TOL


def test_log_loss_follows_the_model_classes_order() -> None:
    """predict_proba's columns are in the order of the model's classes_, not necessarily sorted."""
    y_true = np.array(["spam", "ham", "ham", "spam"], dtype=object)
    proba_sorted = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]])  # columns: ham, spam
    reversed_columns = proba_sorted[:, ::-1]
    ours = classification_metrics(["log_loss"], y_true, y_true, None, reversed_columns, ["spam", "ham"])
    assert abs(ours["log_loss"] - skm.log_loss(y_true, proba_sorted)) <= TOL


def test_log_loss_is_nan_when_it_cannot_be_computed() -> None:
    y_true, y_pred, _ = binary_data(0)
    assert np.isnan(classification_metrics(["log_loss"], y_true, y_pred, None)["log_loss"])  # no predict_proba
    unseen = np.array([0, 1, 2])  # label 2 has no probability column
    proba = np.array([[0.5, 0.5]] * 3)
    assert np.isnan(classification_metrics(["log_loss"], unseen, unseen, None, proba, [0, 1])["log_loss"])


def test_score_model_computes_log_loss_from_predict_proba_and_nan_without_it() -> None:
    model, x, y = fitted_classifier()
    ours = score_model(model, x, y, "classification", ["log_loss"])
    assert abs(ours["log_loss"] - skm.log_loss(y, model.predict_proba(x))) <= TOL

    class LabelsOnly:
        def predict(self, frame: Any) -> Any:
            return model.predict(frame)

    assert np.isnan(score_model(LabelsOnly(), x, y, "classification", ["log_loss", "roc_auc"])["log_loss"])


def test_every_builtin_metric_has_a_task_and_a_direction() -> None:
    from airflow_ml_provider.model.metrics import BUILTIN, greater_is_better

    assert set(BUILTIN) == set(BUILTIN_METRICS)
    higher = {name for name in BUILTIN if greater_is_better(name)}
    assert higher == {"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}
    assert set(BUILTIN) - higher == {"rmse", "mae", "mse", "log_loss"}
    assert greater_is_better("business_cost") is None  # a custom metric states its own
    assert set(REGRESSION_METRICS) == {"rmse", "mae", "mse", "r2"}
    assert "log_loss" in CLASSIFICATION_METRICS


def test_metrics_module_imports_no_numpy_or_pandas() -> None:
    """The gate policy imports the direction table when a DAG file is parsed."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_ml_provider.model.metrics, airflow_ml_provider.gate; "
        "print(sorted(m for m in ('numpy', 'pandas', 'sklearn', 'mlflow', 'airflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
