"""Helpers for the promotion tests: stores, and model versions gated the way ModelGateSensor records it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

VERSIONS = 8


@dataclass
class Store:
    kind: str
    uri: str
    client: Any
    experiment_id: str

    @cached_property
    def hook(self) -> Any:
        """The provider's hook on this store (tracking and registry), as the operators and the CLI open it."""
        from airflow_ml_provider.hooks.mlflow import MlflowHook

        return MlflowHook(tracking_uri=self.uri)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def passing_verdict(name: str, version: str, fingerprint: str) -> Any:
    """A passing gate verdict for the version (an accuracy threshold met), decided by the gate's own ``decide``."""
    from airflow_ml_provider.gate import (
        EvaluationEvidence,
        Evidence,
        FirstVersionRule,
        GatePolicy,
        MetricThreshold,
        Subject,
        decide,
    )

    now = datetime.now(timezone.utc)
    policy = GatePolicy(
        metrics={"accuracy": MetricThreshold(threshold=0.5)},
        require_data_expectations=False,
        require_scenarios=False,
        first_version=FirstVersionRule.ALLOW,
    )
    evidence = Evidence(
        subject=Subject(name, version, fingerprint),
        training_dataset_fingerprints=("blake3:training-data",),
        evaluation=EvaluationEvidence(
            model_version=version,
            model_fingerprint=fingerprint,
            metrics={"accuracy": 0.9},
            champion_version=None,
            champion_metrics=None,
            recorded_at=now,
        ),
    )
    verdict = decide(policy, evidence, now)
    assert verdict.passed, verdict.to_table()
    return verdict


def record_passing_verdict(store: Store, name: str, version: str, fingerprint: str) -> str:
    """Record a passing gate verdict for the version with the gate's own recording (``gate.store.record_verdict``,
    as ModelGateSensor does: a gate step run holding the verdict, and the version's gate tags); returns the run id."""
    from airflow_ml_provider.gate.store import record_verdict
    from airflow_ml_provider.model.reference import ModelRef
    from tests.support import make_context

    experiment = store.client.get_experiment(store.experiment_id).name
    verdict = passing_verdict(name, version, fingerprint)
    context = make_context(f"gate_{name}", "gate")
    return record_verdict(store.hook, experiment, context, ModelRef(name, version), verdict)


def make_gated_versions(store: Store, model_dirs: list[Path], name: str, count: int = VERSIONS) -> list[str]:
    """Register ``count`` versions of ``name`` (artifacts logged in a training run, fingerprint tagged as
    TrainOperator does) and record a passing gate verdict for each."""
    from airflow_ml_provider.data.fingerprint import fingerprint_directory
    from airflow_ml_provider.records.tags import TAG_MODEL_FINGERPRINT

    client = store.client
    client.create_registered_model(name)
    versions = []
    for i in range(count):
        run = client.create_run(store.experiment_id, run_name=f"train {name} #{i + 1}")
        client.log_artifacts(run.info.run_id, str(model_dirs[i]), "model")
        client.set_terminated(run.info.run_id, "FINISHED")
        version = str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version)
        fingerprint = fingerprint_directory(model_dirs[i])
        client.set_model_version_tag(name, version, TAG_MODEL_FINGERPRINT, fingerprint)
        record_passing_verdict(store, name, version, fingerprint)
        versions.append(version)
    return versions
