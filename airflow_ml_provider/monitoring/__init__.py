"""Watching models in production: drift of the data a model scores against the data it was trained on.

:func:`detect_drift` is pure (frames in, a :class:`DriftReport` out); :func:`detect_drift_in_files`
reads Parquet files one column at a time for data that does not fit in memory twice. The
:class:`~airflow_ml_provider.operators.drift.DriftOperator` wraps them in a step.

Importing this package costs nothing: the statistics import pandas, numpy and scipy when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_ml_provider.monitoring.drift import DriftPolicy, DriftReport, FeatureDrift, detect_drift

if TYPE_CHECKING:
    from airflow_ml_provider.monitoring.columns import detect_drift_in_files

__all__ = ["DriftPolicy", "DriftReport", "FeatureDrift", "detect_drift", "detect_drift_in_files"]


def __getattr__(name: str) -> Any:
    """``detect_drift_in_files`` on first use: its module imports the dataset readers (fsspec)."""
    if name == "detect_drift_in_files":
        from airflow_ml_provider.monitoring.columns import detect_drift_in_files

        return detect_drift_in_files
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
