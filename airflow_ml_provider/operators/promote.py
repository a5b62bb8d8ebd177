"""PromoteModelOperator: move a registry alias to a version that passed the gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.operators.model_step import ModelStepOperator
from airflow_ml_provider.promotion.attempt import TAG_PREVIOUS_CHAMPION, TAG_PROMOTED_BY  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.records.step_run import StepRun


class PromotionRefused(RuntimeError):
    """The version may not be promoted; the message says why."""


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

    :param model: see :class:`ModelStepOperator` (templated).
    :param alias: registry alias to move (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same model.
    """

    step = "promote"
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

        from airflow_ml_provider.promotion.attempt import Outcome, airflow_actor, promote, record_attempt

        ref, _ = self.open_model(hook, run)
        result = record_attempt(
            run,
            promote,
            hook.get_client(),
            ref.name,
            ref.version,
            alias=self.alias,
            registry_uri=hook.settings.registry_uri or hook.settings.tracking_uri,
            actor=airflow_actor(context),
            attempt_id=run.run_id,
            lock_timeout=self.lock_timeout,
        )
        if result.outcome is Outcome.REFUSED:
            raise AirflowFailException(f"Refusing to promote {ref.uri}: {result.reason}")
        if result.outcome is Outcome.SUPERSEDED:
            self._skip_reason = f"Not promoting {ref.uri}: {result.reason}"
            return None
        return {
            "model_name": ref.name,
            "version": ref.version,
            "alias": self.alias,
            "previous": result.holder_before,
            "outcome": result.outcome.value,
        }


def require_passing_verdict(client: MlflowClient, ref: ModelRef, version: ModelVersion) -> None:
    """Raise :class:`PromotionRefused` unless a passing verdict for these exact bytes is recorded.

    A registry that fails while the verdict is read raises its own error (not a refusal): the version
    is not promoted either way, but the reason is the registry, not the version.
    """
    import json
    import tempfile
    from pathlib import Path

    from mlflow.exceptions import MlflowException

    from airflow_ml_provider.gate import Verdict
    from airflow_ml_provider.model.reference import TAG_MODEL_FINGERPRINT, TAG_REPRODUCTION_OF
    from airflow_ml_provider.sensors.model_gate import (
        TAG_GATE_FINGERPRINT,
        TAG_GATE_RUN,
        TAG_GATE_STATUS,
        VERDICT_ARTIFACT,
    )

    tags = version.tags
    if tags.get(TAG_REPRODUCTION_OF):
        raise PromotionRefused(f"it is a reproduction of {tags[TAG_REPRODUCTION_OF]}; reproductions are never promoted")
    status = tags.get(TAG_GATE_STATUS)
    if status != "passed":
        raise PromotionRefused(
            "it has no passing gate verdict" if status is None else f"its gate verdict is {status!r}"
        )
    fingerprint = tags.get(TAG_MODEL_FINGERPRINT)
    if not fingerprint or tags.get(TAG_GATE_FINGERPRINT) != fingerprint:
        raise PromotionRefused("the gate verdict was given for a different model artifact fingerprint")
    gate_run = tags.get(TAG_GATE_RUN)
    if not gate_run:
        raise PromotionRefused(f"its gate status says passed but no gate run is recorded ({TAG_GATE_RUN})")
    where = f"{VERDICT_ARTIFACT} of MLflow run {gate_run}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            text = Path(client.download_artifacts(gate_run, VERDICT_ARTIFACT, tmp)).read_text()
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise PromotionRefused(f"its gate verdict ({where}) is missing") from e
        except (OSError, UnicodeDecodeError) as e:
            raise PromotionRefused(f"its gate verdict ({where}) cannot be read: {type(e).__name__}") from e
    try:
        verdict = Verdict.from_dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise PromotionRefused(f"its gate verdict ({where}) is not a valid verdict: {e}") from e
    if not verdict.passed or verdict.subject.model_version != ref.version or verdict.subject.model_name != ref.name:
        raise PromotionRefused(f"the recorded verdict ({where}) does not pass this version")
    if verdict.subject.model_fingerprint != fingerprint:
        raise PromotionRefused(
            f"the recorded verdict ({where}) was given for artifact {verdict.subject.model_fingerprint}, "
            f"not for this version's artifact {fingerprint}"
        )
