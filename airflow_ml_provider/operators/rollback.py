"""RollbackModelOperator: move a registry alias back to the version that held it before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.assets import PROMOTIONS_ALIAS
from airflow_ml_provider.operators.base import MLStepOperator
from airflow_ml_provider.records.tags import TAG_ALIAS, TAG_MODEL_FINGERPRINT, TAG_MODEL_NAME

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class RollbackModelOperator(MLStepOperator):
    """
    Restore the previous champion: point the alias (default ``champion``) back at the version that
    held it before the current one was promoted (tag ``airflow_ml.previous_champion`` on the current
    champion), as ``airflow-ml rollback <model>`` does.

    The same checks as promotion apply, under the same lock: the restored version must still carry a
    passing gate verdict for its exact artifact fingerprint, and the alias is re-read after writing.
    Going back to an older version is the point here, so "an older version never replaces a newer
    champion" does not apply; instead the version rolled back from is tagged
    ``airflow_ml.rolled_back.<alias>`` so that no stale promotion puts it back. The attempt is
    recorded on the version rolled back from and in the step record.

    The task fails (without retry) when there is nothing to restore or the previous champion may not
    hold the alias (no champion, no previous champion recorded, previous version deleted, its verdict
    missing or failed, its artifact fingerprint changed). A lock timeout or registry failure fails
    the task and may be retried. A rollback emits an event on
    :func:`~airflow_ml_provider.assets.champion_asset` like a promotion (``rollback: true`` in its extra).

    :param model_name: registered model name (templated).
    :param alias: registry alias to move back (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same model.
    """

    step = "rollback"
    asset_alias = PROMOTIONS_ALIAS
    runs_in_reproduction = False
    template_fields: Sequence[str] = (*MLStepOperator.template_fields, "model_name", "alias")
    ui_color = "#f6d5d5"

    def __init__(self, *, model_name: str, alias: str = "champion", lock_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.lock_timeout = lock_timeout

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_ml_provider.promotion.attempt import record_attempt, rollback
        from airflow_ml_provider.promotion.rule import Outcome

        run.set_tags({TAG_MODEL_NAME: self.model_name, TAG_ALIAS: self.alias})
        result = record_attempt(
            run, context, rollback, hook, self.model_name, alias=self.alias, lock_timeout=self.lock_timeout
        )
        if result.outcome is not Outcome.RESTORED:
            raise AirflowFailException(f"Cannot roll back alias {self.alias!r} of {self.model_name!r}: {result.reason}")
        self._record_lineage(hook, [result.holder_before, result.holder_after], run)
        from airflow_ml_provider.assets import champion_asset

        # The alias moved (backwards): DAGs scheduled on it run again with the restored version.
        extra = {"model_name": self.model_name, "alias": self.alias, "version": result.holder_after,
                 "previous": result.holder_before, "rollback": True}
        self.emit_asset_event(context, champion_asset(self.model_name, self.alias), extra)
        return {
            "model_name": self.model_name,
            "alias": self.alias,
            "version": result.holder_after,
            "rolled_back_from": result.holder_before,
        }

    def _record_lineage(self, hook: MlflowHook, versions: list[str | None], run: StepRun) -> None:
        """Both versions as inputs (with their fingerprints); lineage never breaks the task."""
        from airflow_ml_provider.lineage.datasets import model_dataset
        from airflow_ml_provider.records.step_record import RecordedModel

        try:
            fingerprint = None
            for version in versions:
                if version is None:
                    continue
                found = hook.model_version(self.model_name, version)
                fingerprint = found.tags.get(TAG_MODEL_FINGERPRINT) if found else None
                self._lineage_inputs.append(model_dataset(hook.tracking_uri, self.model_name, version, fingerprint))
            restored = versions[-1]
            if restored is not None:
                run.record.model = RecordedModel(
                    name=self.model_name,
                    version=restored,
                    uri=f"models:/{self.model_name}/{restored}",
                    fingerprint=fingerprint,
                )
        except Exception as e:
            self.log.warning("Could not describe the rollback for lineage: %s", e)
