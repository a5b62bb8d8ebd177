"""PromoteModelOperator: move a registry alias to a version that passed the gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.assets import PROMOTIONS_ALIAS
from airflow_ml_provider.links import MODEL_STEP_LINKS
from airflow_ml_provider.operators.model_step import ModelStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class PromoteModelOperator(ModelStepOperator):
    """
    Point the registry alias (default ``champion``) at the model version, only if the gate passed
    it: the version must carry a passing verdict recorded by :class:`ModelGateSensor` for the same
    artifact fingerprint, even when the DAG wires this operator without the gate.

    Promotion is serialised per model with a lock (a PostgreSQL advisory lock when the registry is
    PostgreSQL, a file lock otherwise), follows :func:`airflow_ml_provider.promotion.attempt.decide_promotion`,
    re-reads the alias after writing it, tags the version with the previous champion so that it can be
    restored (:class:`RollbackModelOperator`, ``airflow-ml rollback``), and records every attempt on the
    version (tag ``airflow_ml.promotion.<time>.<run id>``) and in the step record.

    Outcomes: promoted, or already the champion -> success. An older version than the champion ->
    the task is **skipped** with the reason (a newer model won; nothing is wrong). No passing verdict,
    or a version rolled back from -> the task **fails** without retry. Lock timeout or registry failure
    -> the task fails and may be retried (retrying is safe).

    When the alias moved, an event on :func:`~airflow_ml_provider.assets.champion_asset` (model, alias)
    carries the new ``version`` and the ``previous`` one (None for a first champion), so a DAG with
    ``schedule=[champion_asset(name)]`` runs on every new champion; a refused, superseded or no-op
    ("already the champion") promotion emits none.

    :param model: see :class:`ModelStepOperator` (templated).
    :param alias: registry alias to move (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same model.
    """

    step = "promote"
    asset_alias = PROMOTIONS_ALIAS
    operator_extra_links = MODEL_STEP_LINKS
    runs_in_reproduction = False
    template_fields: Sequence[str] = (*ModelStepOperator.template_fields, "alias")

    def __init__(self, *, alias: str = "champion", lock_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.lock_timeout = lock_timeout
        self._skip_reason: str | None = None

    def execute(self, context: Context) -> Any:
        # Skip only after the step run has closed, so that its record says what happened (not "failed").
        self._skip_reason = None
        result = super().execute(context)
        if self._skip_reason is not None:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(self._skip_reason)
        return result

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any] | None:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_ml_provider.promotion.attempt import promote, record_attempt
        from airflow_ml_provider.promotion.rule import Outcome

        ref, _ = self.open_model(hook, run)
        result = record_attempt(
            run, context, promote, hook, ref.name, ref.version, alias=self.alias, lock_timeout=self.lock_timeout
        )
        if result.outcome is Outcome.REFUSED:
            raise AirflowFailException(f"Refusing to promote {ref.uri}: {result.reason}")
        if result.outcome is Outcome.SUPERSEDED:
            self._skip_reason = f"Not promoting {ref.uri}: {result.reason}"
            return None
        if result.outcome.moves_alias:
            from airflow_ml_provider.assets import champion_asset

            previous = result.holder_before
            extra = {"model_name": ref.name, "alias": self.alias, "version": ref.version, "previous": previous}
            self.emit_asset_event(context, champion_asset(ref.name, self.alias), extra)
        return {
            "model_name": ref.name,
            "version": ref.version,
            "alias": self.alias,
            "previous": result.holder_before,
            "outcome": result.outcome.value,
        }
