"""Gather the gate's evidence for one model version from MLflow.

Every piece is found through the model version's own tags (``airflow_ml.evidence.<step>`` -> the
MLflow run holding that step's record), never through task order. Anything that cannot be read
becomes a named problem, which the policy turns into a failed check: gathering fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider import models
from airflow_ml_provider.gate import (
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    ScenarioEvidence,
    Subject,
)
from airflow_ml_provider.records.step_record import RecordError, StepRecord, read_record

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def _recorded_at(record: StepRecord) -> datetime:
    if record.recorded_at:
        return datetime.fromisoformat(record.recorded_at)
    return datetime.fromtimestamp(0, tz=timezone.utc)  # unknown time: stale for any max age


def _expectations(record: StepRecord) -> tuple[list[ExpectationEvidence], dict[str, str]]:
    """Expectation evidence of a featurize record, and the fingerprint of each dataset role."""
    fingerprints = {str(d.get("role")): str(d.get("fingerprint")) for d in record.inputs + record.outputs}
    out = []
    for report in record.results.get("expectations", []):
        results = report.get("results", [])
        out.append(
            ExpectationEvidence(
                dataset=str(report.get("dataset")),
                dataset_fingerprint=fingerprints.get(str(report.get("role"))),
                suite_name=str(report.get("suite_name")),
                success=bool(report.get("success")),
                expectation_count=len(results),
                failures=tuple(
                    f"{r.get('expectation_type')} on {r.get('column')}"
                    for r in results
                    if not r.get("success")
                ),
                model_version=None,
                recorded_at=_recorded_at(record),
            )
        )
    return out, fingerprints


def gather_evidence(client: MlflowClient, ref: models.ModelRef, verify_artifact: bool = True) -> Evidence:
    """Collect what is known about ``ref``; raises only when the version itself cannot be read."""
    version = models.get_version(client, ref)
    tags = version.tags
    subject = Subject(ref.name, ref.version, tags.get(models.TAG_MODEL_FINGERPRINT))
    problems: list[str] = []
    trained_on = [fp for fp in [tags.get(models.TAG_FEATURES_FINGERPRINT)] if fp]
    if not trained_on:
        problems.append(
            f"{ref.uri} has no recorded training features fingerprint (not trained by TrainOperator?)"
        )
    if verify_artifact:
        problems += _verify_artifact(version, subject)

    records: dict[str, StepRecord] = {}
    for step in ("featurize", "evaluate", "simulate"):
        run_id = tags.get(models.evidence_tag(step))
        if not run_id:
            continue  # missing evidence: the policy names it
        try:
            record = read_record(client, run_id)
        except RecordError as e:
            problems.append(f"{step} evidence unreadable: {e}")
            continue
        if record.status != "success":
            problems.append(
                f"{step} evidence comes from a run that did not succeed ({record.status}: {record.error})"
            )
            continue
        records[step] = record

    expectations: list[ExpectationEvidence] = []
    if "featurize" in records:
        expectations, fingerprints = _expectations(records["featurize"])
        if fingerprints.get("features") in trained_on:
            # raw data that produced the training features is part of what the model was trained on
            trained_on += [fp for role, fp in fingerprints.items() if role != "features"]
        else:
            problems.append(
                f"featurize evidence is for features {fingerprints.get('features')}, "
                f"but {ref.uri} was trained on {trained_on or 'unknown features'}"
            )

    evaluation = None
    if "evaluate" in records:
        evaluation, champion_problem = _evaluation(records["evaluate"])
        problems += champion_problem
    scenarios = _scenarios(records["simulate"]) if "simulate" in records else None
    return Evidence(
        subject=subject,
        training_dataset_fingerprints=tuple(trained_on),
        data_expectations=tuple(expectations),
        evaluation=evaluation,
        scenarios=scenarios,
        problems=tuple(problems),
    )


def _model_of(record: StepRecord) -> tuple[str, str | None]:
    model = record.model or {}
    return str(model.get("version")), model.get("fingerprint")


def _evaluation(record: StepRecord) -> tuple[EvaluationEvidence, list[str]]:
    version, fingerprint = _model_of(record)
    champion: Mapping[str, Any] | None = record.results.get("champion")
    problems = []
    if champion and champion.get("error"):
        problems.append(f"champion could not be evaluated: {champion['error']}")
    evidence = EvaluationEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        metrics={k: float(v) for k, v in record.results.get("metrics", {}).items()},
        champion_version=str(champion["version"]) if champion and champion.get("version") else None,
        champion_metrics=(
            {k: float(v) for k, v in champion["metrics"].items()}
            if champion and "metrics" in champion
            else None
        ),
        recorded_at=_recorded_at(record),
    )
    return evidence, problems


def _scenarios(record: StepRecord) -> ScenarioEvidence:
    version, fingerprint = _model_of(record)
    results: Sequence[Mapping[str, Any]] = record.results.get("scenarios", {}).get("results", [])
    return ScenarioEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        results={str(r["name"]): bool(r["passed"]) for r in results},
        reasons={str(r["name"]): str(r.get("reason", "")) for r in results},
        recorded_at=_recorded_at(record),
    )


def _verify_artifact(version: ModelVersion, subject: Subject) -> list[str]:
    """The bytes in the registry must still be the bytes that were trained and fingerprinted."""
    if not subject.model_fingerprint:
        return [f"{subject.model_name} v{subject.model_version} has no recorded artifact fingerprint"]
    try:
        current = models.fingerprint_model(version.source)
    except Exception as e:
        return [f"model artifact {version.source} cannot be read: {e}"]
    if current != subject.model_fingerprint:
        return [
            f"model artifact changed after training: fingerprint now {current}, "
            f"recorded {subject.model_fingerprint}"
        ]
    return []
