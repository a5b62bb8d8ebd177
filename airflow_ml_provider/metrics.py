"""Built-in evaluation metrics, computed with numpy so scikit-learn stays an optional dependency."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("rmse", "mae", "r2")
BUILTIN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


class UnknownMetricError(ValueError):
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


def classification_metrics(
    names: Sequence[str], y_true: Any, y_pred: Any, positive_score: Any | None
) -> dict[str, float]:
    """Binary metrics use the larger label as positive; with more classes, precision/recall/f1 are
    macro-averaged and roc_auc is not defined (NaN)."""
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
    return out


def regression_metrics(names: Sequence[str], y_true: Any, y_pred: Any) -> dict[str, float]:
    import numpy as np

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    err = y_pred - y_true
    out: dict[str, float] = {}
    if "rmse" in names:
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
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
        score = None
        if "roc_auc" in names and callable(getattr(model, "predict_proba", None)):
            score = np.asarray(model.predict_proba(x))[:, -1]
        result = classification_metrics(names, y, y_pred, score)
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
