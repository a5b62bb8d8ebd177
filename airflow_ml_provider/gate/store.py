"""Store a verdict in MLflow: the gate's own step run and the model version's gate tags.

The gate's I/O side, with :mod:`~airflow_ml_provider.gate.gather` (which reads the evidence); the sensor
calls it, and so can anything else that decides a verdict (tests, a backfill). Promotion reads back exactly
what this writes (``promotion.eligibility``): the gate tags point at the run whose record holds the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ml_provider.records.tags import TAG_GATE_FINGERPRINT, TAG_GATE_RUN, TAG_GATE_STATUS, VERDICT_ARTIFACT

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.gate.verdict import Verdict
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.model.reference import ModelRef


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
            TAG_GATE_STATUS: "passed" if verdict.passed else "failed",
            TAG_GATE_RUN: run.run_id,
            TAG_GATE_FINGERPRINT: verdict.subject.model_fingerprint or "",
        }
        hook.set_model_version_tags(ref.name, ref.version, tags)
        if not verdict.passed:
            run.fail(verdict.summary())
    return run.run_id
