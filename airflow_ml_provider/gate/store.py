"""Store a verdict in MLflow: the gate's own step run and the model version's gate tags.

The gate's I/O side, with :mod:`~airflow_ml_provider.gate.gather` (which reads the evidence); the sensor
calls it, and so can anything else that decides a verdict (tests, a backfill). Promotion reads back exactly
what this writes (``promotion.eligibility``): the gate tags point at the run whose record holds the verdict.

Also the rest of a version's gate status (``airflow_ml.gate.status``), which TrainOperator writes through
here: ``pending`` from the moment the version is registered, until the verdict; ``abandoned`` when the train
attempt that registered it did not finish, so that no version is left without a verdict and unmarked. A
killed attempt cannot mark its own version: the task's next attempt does (:func:`abandon_earlier_attempts`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow_ml_provider.records.tags import (
    GATE_ABANDONED,
    GATE_FAILED,
    GATE_PASSED,
    GATE_PENDING,
    TAG_ABANDONED_BY,
    TAG_GATE_FINGERPRINT,
    TAG_GATE_RUN,
    TAG_GATE_STATUS,
    TAG_TRY,
    VERDICT_ARTIFACT,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.gate.verdict import Verdict
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.records.step_run import StepRun

log = logging.getLogger(__name__)


def record_verdict(hook: MlflowHook, experiment_name: str, context: Context, ref: ModelRef, verdict: Verdict) -> str:
    """Record ``verdict`` for ``ref`` in a ``gate`` step run of ``experiment_name``; return that run's id.

    A failed verdict is a failed step: the run ends FAILED with the verdict's summary as its record's error
    (so the DAG run's parent run is FAILED too), the verdict still recorded in full. Raises whatever MLflow
    raises; the caller decides what an unrecordable verdict means (for a passing one: no promotion).
    """
    from airflow_ml_provider.records.step_record import GateResult, RecordedModel
    from airflow_ml_provider.records.step_run import step_run

    with step_run(hook, experiment_name, context, "gate", None) as run:
        run.record.model = RecordedModel(
            name=ref.name, version=ref.version, uri=ref.uri, fingerprint=verdict.subject.model_fingerprint
        )
        run.record.results = GateResult(verdict)
        run.log_dict(verdict.to_dict(), VERDICT_ARTIFACT)
        run.log_metrics({"gate_passed": float(verdict.passed), "gate_failed_checks": len(verdict.failures)})
        tags = {
            TAG_GATE_STATUS: GATE_PASSED if verdict.passed else GATE_FAILED,
            TAG_GATE_RUN: run.run_id,
            TAG_GATE_FINGERPRINT: verdict.subject.model_fingerprint or "",
        }
        hook.set_model_version_tags(ref.name, ref.version, tags)
        if not verdict.passed:
            run.fail(verdict.summary())
    return run.run_id


def abandon_earlier_attempts(hook: MlflowHook, current: StepRun, name: str) -> list[str]:
    """Mark ``abandoned`` every version of ``name`` that an earlier try of this task registered and that
    never got a verdict (status ``pending``, or none: the try died before it could say ``pending``).

    Returns the versions marked. Best effort: a version that cannot be marked stays without a passing
    verdict, which promotion refuses all the same; the failure is logged and the step goes on.
    """
    from airflow_ml_provider.records.step_run import earlier_attempts

    task = current.record.airflow.task_id
    try:
        runs = {run.info.run_id: run for run in earlier_attempts(hook, current)}
        versions = hook.model_versions(name, run_ids=list(runs))
    except Exception as e:
        log.warning("Could not look for versions of %r left by earlier tries of %s: %s", name, task, e)
        return []
    marked = []
    for version in versions:
        if version.tags.get(TAG_GATE_STATUS, GATE_PENDING) != GATE_PENDING:
            continue  # it has a verdict (or is already marked): the record stands
        registered_by = runs[version.run_id].data.tags.get(TAG_TRY, "?")
        log.warning(
            "Version %s of %r was registered by try %s of %s (MLflow run %s) and never gated: marking it %r",
            version.version, name, registered_by, task, version.run_id, GATE_ABANDONED,
        )
        by = f"{_attempt(current)}: superseded by a retry (registered by try {registered_by}); never gated"
        if _abandon(hook, name, str(version.version), by):
            marked.append(str(version.version))
    return marked


def _attempt(current: StepRun) -> str:
    """``<dag_id>/<run_id>/<task_id>[<map index>] try <n>``: the task try, as people search logs for it."""
    ids = current.record.airflow
    index = f"[{ids.map_index}]" if ids.map_index >= 0 else ""
    return f"{ids.dag_id}/{ids.run_id}/{ids.task_id}{index} try {ids.try_number}"


def _abandon(hook: MlflowHook, name: str, version: str, by: str) -> bool:
    """Mark one version abandoned; False (logged) when the registry cannot be written."""
    try:
        hook.set_model_version_tags(name, version, {TAG_GATE_STATUS: GATE_ABANDONED, TAG_ABANDONED_BY: by})
    except Exception as e:
        log.warning(
            "Could not mark version %s of %r %r (%s): it stays without a passing verdict, which promotion refuses",
            version, name, GATE_ABANDONED, e,
        )
        return False
    return True
