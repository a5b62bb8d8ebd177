"""The lineage walk's :class:`~airflow_ml_provider.lineage.graph.RecordSource` over an MLflow store.

Shared by ``airflow-ml lineage`` and the Models page, so both draw the same graph from the same reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_record import StepRecord

_MAX_PRODUCER_RUNS = 50


class MlflowRecordSource:
    """:class:`~airflow_ml_provider.lineage.graph.RecordSource` over an MLflow tracking store and registry."""

    def __init__(self, hook: MlflowHook) -> None:
        self.hook = hook
        self._experiment_ids: list[str] | None = None

    def record(self, run_id: str) -> StepRecord | None:
        """The run's record; None when it cannot be read, :class:`RecordError` when it does not parse."""
        from airflow_ml_provider.records.step_record import RecordError, read_step_record

        try:
            return read_step_record(self.hook, run_id)
        except RecordError as e:
            if e.field is None:  # missing or unreadable: not there
                return None
            raise

    def model_version(self, name: str, version: str) -> Mapping[str, Any] | None:
        from mlflow.exceptions import MlflowException

        try:
            v = self.hook.model_version(name, version)
        except MlflowException:
            return None
        if v is None:
            return None
        return {
            "name": v.name,
            "version": str(v.version),
            "tags": dict(v.tags or {}),
            "aliases": list(getattr(v, "aliases", None) or []),
            "run_id": v.run_id,
        }

    def alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        from airflow_ml_provider.lineage.graph import LineageError

        try:
            return self.hook.alias_version(name, alias)
        except MlflowException as e:
            raise LineageError(f"cannot resolve models:/{name}@{alias}: {e.message}") from e

    def producers(self, fingerprint: str) -> list[str]:
        from airflow_ml_provider.records.tags import (
            KIND_STEP,
            TAG_FEATURES_FINGERPRINT,
            TAG_KIND,
            TAG_OUTPUT_FINGERPRINT,
        )

        experiments = self.experiment_ids()
        if not experiments:
            return []
        runs: dict[str, Any] = {}
        # Predict tags its run with its output; featurize with its features (same tag name as the
        # model version tag). Other steps' outputs are reached through the records that read them.
        for tag in (TAG_OUTPUT_FINGERPRINT, TAG_FEATURES_FINGERPRINT):
            for r in self.hook.search_runs(
                experiments,
                f"tags.`{tag}` = '{fingerprint}' and tags.`{TAG_KIND}` = '{KIND_STEP}'",
                order_by=["attributes.start_time DESC"],
                max_results=_MAX_PRODUCER_RUNS,
            ):
                runs[r.info.run_id] = r
        ordered = sorted(runs.values(), key=lambda r: (r.info.start_time or 0, r.info.run_id), reverse=True)
        return [r.info.run_id for r in ordered]

    def experiment_ids(self) -> list[str]:
        if self._experiment_ids is None:
            self._experiment_ids = self.hook.experiment_ids()
        return self._experiment_ids
