"""May a version hold a promotion alias: a passing gate verdict for its exact artifact, and not a reproduction.

Used by every move of an alias (:mod:`airflow_ml_provider.promotion.attempt`), promotion and rollback
alike. Imports only the standard library at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.tags import (
    GATE_ABANDONED,
    GATE_PASSED,
    GATE_PENDING,
    TAG_ABANDONED_BY,
    TAG_GATE_FINGERPRINT,
    TAG_GATE_RUN,
    TAG_GATE_STATUS,
    TAG_MODEL_FINGERPRINT,
    TAG_REPRODUCTION_OF,
    VERDICT_ARTIFACT,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef


class PromotionRefused(AirflowMLError, RuntimeError):
    """The version may not be promoted; the message says why."""


def require_passing_verdict(hook: MlflowHook, ref: ModelRef, version: ModelVersion) -> None:
    """Raise :class:`PromotionRefused` unless a passing verdict for these exact bytes is recorded.

    A registry that fails while the verdict is read raises its own error (not a refusal): the version
    is not promoted either way, but the reason is the registry, not the version.
    """
    import json

    from mlflow.exceptions import MlflowException

    from airflow_ml_provider.gate import Verdict

    tags = version.tags
    if tags.get(TAG_REPRODUCTION_OF):
        raise PromotionRefused(f"it is a reproduction of {tags[TAG_REPRODUCTION_OF]}; reproductions are never promoted")
    status = tags.get(TAG_GATE_STATUS)
    if status == GATE_PENDING:
        raise PromotionRefused(
            f"it has not been through the gate yet (gate status {GATE_PENDING!r}): run ModelGateSensor on it first"
        )
    if status == GATE_ABANDONED:
        raise PromotionRefused(
            f"it was abandoned ({tags.get(TAG_ABANDONED_BY) or 'no reason recorded'}): a version left by a train "
            "attempt that did not complete is never gated or promoted; promote one that a completed attempt registered"
        )
    if status != GATE_PASSED:
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
    try:
        with hook.download_artifact_file(gate_run, VERDICT_ARTIFACT) as local:
            text = local.read_text()
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
