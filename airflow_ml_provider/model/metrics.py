"""Built-in evaluation metrics, computed with numpy so scikit-learn stays an optional dependency.

:data:`BUILTIN` is the one table of the built-in metrics: which task each belongs to and which way
is better. The evaluation reads it for what it can compute; the gate policy reads it for the
direction of a metric, so a direction is never guessed (``rmse`` is lower-is-better everywhere).
Stdlib only at module level: the gate imports this when a DAG file is parsed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from airflow_ml_provider.exceptions import AirflowMLError


class BuiltinMetric(NamedTuple):
    task: str
    greater_is_better: bool


#: name -> (task, greater_is_better) of every metric the evaluation computes without ``metric_fn``.
BUILTIN: Mapping[str, BuiltinMetric] = MappingProxyType(
    {
        "accuracy": BuiltinMetric("classification", True),
        "precision": BuiltinMetric("classification", True),
        "recall": BuiltinMetric("classification", True),
        "f1": BuiltinMetric("classification", True),
        "roc_auc": BuiltinMetric("classification", True),
        "log_loss": BuiltinMetric("classification", False),
        "rmse": BuiltinMetric("regression", False),
        "mae": BuiltinMetric("regression", False),
        "mse": BuiltinMetric("regression", False),
        "r2": BuiltinMetric("regression", True),
    }
)
CLASSIFICATION_METRICS = tuple(name for name, metric in BUILTIN.items() if metric.task == "classification")
REGRESSION_METRICS = tuple(name for name, metric in BUILTIN.items() if metric.task == "regression")
BUILTIN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


def greater_is_better(name: str) -> bool | None:
    """The direction of a built-in metric; None for any other (a custom metric must state its own)."""
    metric = BUILTIN.get(name)
    return None if metric is None else metric.greater_is_better


def direction_words(greater: bool) -> str:
    return "higher is better" if greater else "lower is better"


class UnknownMetricError(AirflowMLError, ValueError):
    pass


def validate_metric_names(names: Sequence[str], task: str | None = None) -> None:
    allowed = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}.get(
        task or "", BUILTIN_METRICS
    )
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UnknownMetricError(
            f"Unknown metric(s) {unknown} for {task or 'any'} task; built-in metrics are {list(allowed)}. "
            "Pass metric_fn for custom metrics."
        )


def default_metrics(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def _binary_prf(y_true: Any, y_pred: Any, positive: Any) -> tuple[float, float, float]:
    import numpy as np

    tp = float(np.sum((y_pred == positive) & (y_true == positive)))
    fp = float(np.sum((y_pred == positive) & (y_true != positive)))
    fn = float(np.sum((y_pred != positive) & (y_true == positive)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _roc_auc(y_true: Any, score: Any, positive: Any) -> float:
    """Binary ROC AUC as the Mann-Whitney U statistic (ties get average ranks)."""
    import pandas as pd

    pos = y_true == positive
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _log_loss(y_true: Any, proba: Any, classes: Any) -> float:
    """Mean negative log-probability of the true label, probabilities clipped to [eps, 1 - eps] as
    scikit-learn does; NaN when a true label has no probability column (the model never saw it)."""
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or len(classes) != proba.shape[1] or not len(y_true):
        return float("nan")
    column = {label: index for index, label in enumerate(classes)}
    try:
        index = np.asarray([column[label] for label in y_true.tolist()])
    except (KeyError, TypeError):
        return float("nan")
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(len(index)), index], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def classification_metrics(
    names: Sequence[str],
    y_true: Any,
    y_pred: Any,
    positive_score: Any | None,
    proba: Any | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Binary metrics use the larger label as positive; with more classes, precision/recall/f1 are
    macro-averaged and roc_auc is not defined (NaN). ``log_loss`` needs ``proba`` (``predict_proba``'s
    matrix, columns in the order of ``classes``, by default the sorted labels); without it, NaN."""
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    out: dict[str, float] = {}
    if "accuracy" in names:
        out["accuracy"] = float(np.mean(y_true == y_pred))
    if {"precision", "recall", "f1"} & set(names):
        if len(labels) <= 2:
            p, r, f = _binary_prf(y_true, y_pred, labels[-1])  # np.unique sorts: the larger label
        else:
            per_class = [_binary_prf(y_true, y_pred, label) for label in labels]
            p, r, f = (float(np.mean([c[i] for c in per_class])) for i in range(3))
        out.update({k: v for k, v in (("precision", p), ("recall", r), ("f1", f)) if k in names})
    if "roc_auc" in names:
        if positive_score is None or len(labels) > 2:
            out["roc_auc"] = float("nan")
        else:
            out["roc_auc"] = _roc_auc(y_true, np.asarray(positive_score), labels[-1])
    if "log_loss" in names:
        if proba is None:
            out["log_loss"] = float("nan")
        else:
            out["log_loss"] = _log_loss(y_true, proba, list(labels) if classes is None else list(classes))
    return out


def regression_metrics(names: Sequence[str], y_true: Any, y_pred: Any) -> dict[str, float]:
    import numpy as np

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    err = y_pred - y_true
    out: dict[str, float] = {}
    if "rmse" in names:
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
    if "mse" in names:
        out["mse"] = float(np.mean(err**2))
    if "mae" in names:
        out["mae"] = float(np.mean(np.abs(err)))
    if "r2" in names:
        total = float(np.sum((y_true - y_true.mean()) ** 2))
        out["r2"] = 1.0 - float(np.sum(err**2)) / total if total else float("nan")
    return out


def score_model(
    model: Any,
    x: Any,
    y: Any,
    task: str,
    names: Sequence[str],
    metric_fn: Callable[..., dict[str, float]] | None = None,
) -> dict[str, float]:
    """Score ``model`` on (x, y) with the built-in metrics ``names`` plus ``metric_fn(y_true, y_pred)``."""
    import numpy as np

    y_pred = np.asarray(model.predict(x)).reshape(len(x), -1)[:, 0] if len(x) else np.asarray([])
    if task == "classification":
        proba = score = classes = None
        if {"roc_auc", "log_loss"} & set(names) and callable(getattr(model, "predict_proba", None)):
            proba = np.asarray(model.predict_proba(x))
            score = proba[:, -1]
            classes = getattr(model, "classes_", None)
        result = classification_metrics(names, y, y_pred, score, proba, classes)
    else:
        result = regression_metrics(names, y, y_pred)
    if metric_fn is not None:
        custom = metric_fn(np.asarray(y), y_pred)
        if not isinstance(custom, Mapping) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in custom.values()
        ):
            raise TypeError(
                f"metric_fn must return a dict of metric name -> number, got {type(custom).__name__}: {custom!r:.200}"
            )
        result.update({str(k): float(v) for k, v in custom.items()})
    return result
