"""PromoteModelOperator: move a registry alias to a version that passed the gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.operators.model_step import ModelStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.models import ModelRef
    from airflow_ml_provider.tracking import StepRun

TAG_PREVIOUS_CHAMPION = "airflow_ml.previous_champion"
TAG_PROMOTED_BY = "airflow_ml.promoted_by"


class PromotionRefused(RuntimeError):
    """The version may not be promoted; the message says why."""


class PromoteModelOperator(ModelStepOperator):
    """
    Point the registry alias (default ``champion``) at the model version, only if the gate passed
    it: the version must carry a passing verdict recorded by :class:`ModelGateSensor` for the same
    artifact fingerprint, even when the DAG wires this operator without the gate.

    Promotion is serialised per model with a lock, refuses to replace a newer champion with an
    older version, re-reads the alias after writing it, and tags the version with the previous
    champion so that it can be restored.

    :param model: see :class:`ModelStepOperator` (templated).
    :param alias: registry alias to move (templated).
    """

    step = "promote"
    template_fields: Sequence[str] = (*ModelStepOperator.template_fields, "alias")

    def __init__(self, *, alias: str = "champion", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alias = alias

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_ml_provider.locks import promotion_lock

        ref, version = self.open_model(hook, run)
        client = hook.get_client()
        try:
            require_passing_verdict(client, ref, version)
        except PromotionRefused as e:
            raise AirflowFailException(f"Refusing to promote {ref.uri}: {e}") from e

        registry = hook.settings.registry_uri or hook.settings.tracking_uri
        with promotion_lock(registry, ref.name):
            previous = current_alias_version(client, ref.name, self.alias)
            if previous is not None and int(previous) > int(ref.version):
                raise AirflowFailException(
                    f"Refusing to promote {ref.uri}: alias {self.alias!r} points to newer version {previous}; "
                    "an older version never replaces a newer champion"
                )
            client.set_registered_model_alias(ref.name, self.alias, ref.version)
            now = current_alias_version(client, ref.name, self.alias)
            if now != ref.version:
                raise AirflowFailException(
                    f"Alias {self.alias!r} of {ref.name} reads back as version {now} after setting it to "
                    f"{ref.version}: a concurrent writer bypassed the lock"
                )
            client.set_model_version_tag(ref.name, ref.version, TAG_PREVIOUS_CHAMPION, previous or "none")
            client.set_model_version_tag(ref.name, ref.version, TAG_PROMOTED_BY, run.run_id)
        run.record.results = {"alias": self.alias, "previous": previous, "promoted": ref.version}
        self.log.info(
            "Promoted %s to alias %r (previous: %s)",
            ref.uri,
            self.alias,
            f"v{previous}" if previous else "none",
        )
        return {"model_name": ref.name, "version": ref.version, "alias": self.alias, "previous": previous}


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if alias_missing(e):
            return None
        raise


def alias_missing(error: Exception) -> bool:
    """MLflow reports an unset alias as INVALID_PARAMETER_VALUE (SQL store) or RESOURCE_DOES_NOT_EXIST."""
    return "alias" in str(error).lower() and "not found" in str(error).lower()


def require_passing_verdict(client: MlflowClient, ref: ModelRef, version: ModelVersion) -> None:
    """Raise :class:`PromotionRefused` unless a passing verdict for these exact bytes is recorded."""
    import json
    import tempfile
    from pathlib import Path

    from airflow_ml_provider.gate import Verdict
    from airflow_ml_provider.models import TAG_MODEL_FINGERPRINT
    from airflow_ml_provider.sensors.model_gate import (
        TAG_GATE_FINGERPRINT,
        TAG_GATE_RUN,
        TAG_GATE_STATUS,
        VERDICT_ARTIFACT,
    )

    tags = version.tags
    status = tags.get(TAG_GATE_STATUS)
    if status != "passed":
        raise PromotionRefused(
            "it has no passing gate verdict" if status is None else f"its gate verdict is {status!r}"
        )
    fingerprint = tags.get(TAG_MODEL_FINGERPRINT)
    if not fingerprint or tags.get(TAG_GATE_FINGERPRINT) != fingerprint:
        raise PromotionRefused("the gate verdict was given for a different model artifact fingerprint")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(tags[TAG_GATE_RUN], VERDICT_ARTIFACT, tmp)
            verdict = Verdict.from_dict(json.loads(Path(path).read_text()))
    except Exception as e:
        raise PromotionRefused(f"its gate verdict cannot be read: {e}") from e
    if not verdict.passed or verdict.subject.model_version != ref.version:
        raise PromotionRefused("the recorded verdict does not pass this version")
