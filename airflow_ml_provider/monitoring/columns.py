"""Drift on datasets too big to hold twice: Parquet files read one column at a time.

:func:`detect_drift_in_files` gives the same report as :func:`~airflow_ml_provider.monitoring.drift.detect_drift`
on the whole frames, but holds one column of the reference and one of the batch at a time (plus the
statistics' working copies of them), so its peak memory is a small fraction of one frame however many
columns there are. Files are opened through :func:`airflow_ml_provider.data.datasets.open_dataset`:
local paths, ``file://`` and any fsspec URL. CSV cannot be read by column: a CSV side is read whole
with :func:`~airflow_ml_provider.data.datasets.read_frame`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.data.datasets import DatasetError, frame_schema, open_dataset, read_frame
from airflow_ml_provider.monitoring.drift import DriftPolicy, DriftReport, report_from_columns

if TYPE_CHECKING:
    import numpy as np

__all__ = ["detect_drift_in_files"]


class _Side:
    """One dataset as a schema, a row count and a column reader."""

    def __init__(self, uri: str, what: str, stack: ExitStack) -> None:
        fs, path = open_dataset(uri, what)
        self._frame = None
        self._parquet = None
        if PurePosixPath(path).suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            try:
                self._parquet = pq.ParquetFile(stack.enter_context(fs.open(path, "rb")))
            except FileNotFoundError as e:
                raise DatasetError(f"{what} {uri} does not exist") from e
            except Exception as e:
                raise DatasetError(f"{what} {uri} could not be read as parquet: {e}") from e
            self.schema = frame_schema(self._parquet.schema_arrow.empty_table().to_pandas())
            self.rows = int(self._parquet.metadata.num_rows)
        else:
            self._frame = read_frame(uri, what)
            self.schema = frame_schema(self._frame)
            self.rows = len(self._frame)

    def column(self, name: str) -> np.ndarray[Any, Any]:
        if self._frame is not None:
            return self._frame[name].to_numpy()
        assert self._parquet is not None
        return self._parquet.read(columns=[name]).column(0).to_pandas().to_numpy()


def detect_drift_in_files(
    reference_uri: str, current_uri: str, policy: DriftPolicy | Mapping[str, Any] | None = None
) -> DriftReport:
    """:func:`~airflow_ml_provider.monitoring.drift.detect_drift` on two datasets, a column at a time.

    Each column is read with pandas' own conversion (``to_pandas``), so dtypes, and therefore schema
    changes, are the ones :func:`~airflow_ml_provider.data.datasets.read_frame` would show.
    """
    with ExitStack() as stack:
        reference = _Side(reference_uri, "reference dataset", stack)
        current = _Side(current_uri, "current dataset", stack)
        return report_from_columns(
            reference.schema,
            current.schema,
            reference.rows,
            current.rows,
            lambda name: (reference.column(name), current.column(name)),
            policy,
        )
