"""Test doubles and builders shared by the test packages (fixtures live in the conftest.py files)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_ml_provider.gate import (
    ApprovalEvidence,
    Check,
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    FirstVersionRule,
    GatePolicy,
    MetricThreshold,
    ScenarioEvidence,
    Subject,
    Verdict,
)

# --------------------------------------------------------------------------------------------
# The session's environment (tests/conftest.py points Airflow, MLflow and OpenLineage at it).
# --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags_examples"
STATE = Path(tempfile.mkdtemp(prefix="airflow-ml-tests-"))
EVENTS = STATE / "lineage" / "events.jsonl"
RAW_URI = STATE / "data" / "breast_cancer.parquet"


def read_events() -> list[dict[str, Any]]:
    if not EVENTS.exists():
        return []
    return [json.loads(line) for line in EVENTS.read_text().splitlines() if line.strip()]


def run_dag(dag_id: str, conf: dict[str, Any] | None = None, folder: Path = DAGS) -> Any:
    """Run a DAG from the DAGs folder (or another ``folder``) with ``dag.test()``, parsed as ``airflow dags
    test`` parses it (a BundleDagBag, which puts the folder on ``sys.path``); returns the finished DagRun."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {folder}"
    return dag.test(run_conf=conf or {})


@dataclass(frozen=True)
class FakeTaskInstance:
    """Test double of Airflow's RuntimeTaskInstance: only what the operators and the gate read.

    Tests that call ``execute()``/``poke()`` directly use it; the DAG-level tests run real task
    instances with ``dag.test()``.
    """

    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1
    xcoms: Mapping[str, Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str | None = None, **_: Any) -> Any:
        return self.xcoms.get(task_ids) if task_ids is not None else None

    def get_first_reschedule_date(self, context: Any) -> Any:
        return None  # the first try: no reschedule yet


def make_context(
    dag_id: str, task_id: str, run_id: str | None = None, xcoms: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A task context; a fresh DAG run id per call unless given, so each test's MLflow runs are its own."""
    run_id = run_id or f"manual__test_{uuid.uuid4().hex[:12]}"
    return {"ti": FakeTaskInstance(dag_id, run_id, task_id, xcoms=dict(xcoms or {}))}


def champion(client: Any, model: str, alias: str = "champion") -> str | None:
    """The version ``alias`` points at in the registry behind ``client`` (its tracking URI), or None.

    Read through the provider's hook, as the operators and the CLI read it."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook(tracking_uri=client.tracking_uri).alias_version(model, alias)


@contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """An S3 server (moto) on 127.0.0.1 with ``bucket``; s3fs reaches it through ``AWS_ENDPOINT_URL_S3``.

    Yields the endpoint URL. The environment and s3fs's instance cache are restored afterwards.
    """
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "test",  # short fake credentials: moto accepts any
        "AWS_SECRET_ACCESS_KEY": "fake",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        s3fs.S3FileSystem().mkdir(bucket)
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


# --------------------------------------------------------------------------------------------
# Gate evidence: constants and builders for a fully passing evidence set, each piece overridable.
# --------------------------------------------------------------------------------------------

NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=timezone.utc)
RECENT = NOW - timedelta(hours=1)
MODEL_FP = "sha256:model-3"
RAW_FP = "blake3:raw-data"
FEATURES_FP = "blake3:features"


def make_subject(**overrides: Any) -> Subject:
    values: dict[str, Any] = {"model_name": "fraud", "model_version": "3", "model_fingerprint": MODEL_FP}
    values.update(overrides)
    return Subject(**values)


def make_expectation(**overrides: Any) -> ExpectationEvidence:
    values: dict[str, Any] = {
        "dataset": "raw",
        "dataset_fingerprint": RAW_FP,
        "suite_name": "raw_suite",
        "success": True,
        "expectation_count": 12,
        "failures": (),
        "model_version": None,
        "recorded_at": RECENT,
    }
    values.update(overrides)
    return ExpectationEvidence(**values)


def make_features_expectation(**overrides: Any) -> ExpectationEvidence:
    values: dict[str, Any] = {
        "dataset": "features",
        "dataset_fingerprint": FEATURES_FP,
        "suite_name": "features_suite",
        "expectation_count": 5,
        "model_version": "3",
    }
    values.update(overrides)
    return make_expectation(**values)


def make_evaluation(**overrides: Any) -> EvaluationEvidence:
    values: dict[str, Any] = {
        "model_version": "3",
        "model_fingerprint": MODEL_FP,
        "metrics": {"accuracy": 0.912, "loss": 0.2},
        "champion_version": "2",
        "champion_metrics": {"accuracy": 0.905, "loss": 0.25},
        "recorded_at": RECENT,
    }
    values.update(overrides)
    return EvaluationEvidence(**values)


def make_scenarios(**overrides: Any) -> ScenarioEvidence:
    values: dict[str, Any] = {
        "model_version": "3",
        "model_fingerprint": MODEL_FP,
        "results": {"typical_benign": True, "fraud_ring": True},
        "reasons": {"fraud_ring": "caught 10 of 10"},
        "recorded_at": RECENT,
    }
    values.update(overrides)
    return ScenarioEvidence(**values)


def make_approval(**overrides: Any) -> ApprovalEvidence:
    values: dict[str, Any] = {
        "approved": True,
        "approver": "alice",
        "decided_at": RECENT,
        "comment": "looks good",
        "model_version": "3",
    }
    values.update(overrides)
    return ApprovalEvidence(**values)


def make_evidence(**overrides: Any) -> Evidence:
    values: dict[str, Any] = {
        "subject": make_subject(),
        "training_dataset_fingerprints": (RAW_FP, FEATURES_FP),
        "data_expectations": (make_expectation(), make_features_expectation()),
        "evaluation": make_evaluation(),
        "scenarios": make_scenarios(),
        "approval": make_approval(),
        "problems": (),
    }
    values.update(overrides)
    return Evidence(**values)


def full_policy(**overrides: Any) -> GatePolicy:
    """Every rule switched on; ``make_evidence()`` passes it."""
    values: dict[str, Any] = {
        "metrics": {
            "accuracy": MetricThreshold(threshold=0.9, min_absolute_change=-0.01, min_relative_change=-0.02),
            "loss": MetricThreshold(threshold=0.3, min_absolute_change=0.0, greater_is_better=False),
        },
        "require_data_expectations": True,
        "required_suites": ("raw_suite", "features_suite"),
        "require_scenarios": True,
        "required_scenarios": ("typical_benign",),
        "first_version": FirstVersionRule.BLOCK,
        "max_evidence_age": timedelta(days=1),
        "require_approval": True,
    }
    values.update(overrides)
    return GatePolicy(**values)


def metrics_only_policy(**overrides: Any) -> GatePolicy:
    """Only an accuracy threshold: isolates one rule from the others."""
    values: dict[str, Any] = {
        "metrics": {"accuracy": MetricThreshold(threshold=0.9)},
        "require_data_expectations": False,
        "require_scenarios": False,
    }
    values.update(overrides)
    return GatePolicy(**values)


def named(verdict: Verdict, name: str) -> Check:
    """The one check called ``name``; fails the test when there is none or several."""
    found = [item for item in verdict.checks if item.name == name]
    assert len(found) == 1, f"expected one check {name!r}, got {found} in {[c.name for c in verdict.checks]}"
    return found[0]


def names(verdict: Verdict) -> list[str]:
    return [item.name for item in verdict.checks]


def failed_names(verdict: Verdict) -> list[str]:
    return [item.name for item in verdict.failures]


def loose(value: Any) -> Any:
    """Marks a deliberately ill-typed argument (the code under test must refuse it at run time)."""
    return value


def json_round_trip(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data, allow_nan=False))


# --------------------------------------------------------------------------------------------
# Scenario files: a minimal scenario and a suite the real test classifier passes.
# --------------------------------------------------------------------------------------------


def scenario(name: str = "s", rows: int = 3, **expect: Any) -> dict[str, Any]:
    """A minimal valid scenario dict with ``rows`` rows."""
    return {"name": name, "rows": [{"x": i} for i in range(rows)], "expect": expect}


MODEL_SUITE = """\
scenarios:
  - name: typical_benign
    description: small, smooth tumours are benign
    rows:
      # keys in a different order than training, plus a column the model never saw
      - {mean texture: 14.0, mean radius: 9.0, patient_id: p1}
      - {mean texture: 20.0, mean radius: 11.0, patient_id: p2}
      - {mean texture: 25.0, mean radius: 12.5, patient_id: p3}
    expect:
      equals: 1
  - name: typical_malignant
    rows:
      - {mean radius: 21.0, mean texture: 22.0}
      - {mean radius: 23.5, mean texture: 15.0}
    expect:
      one_of: [0]
  - name: mixed_labelled
    rows:
      - {mean radius: 8.0, mean texture: 12.0}
      - {mean radius: 22.0, mean texture: 18.0}
      - {mean radius: 10.0, mean texture: 28.0}
      - {mean radius: 19.0, mean texture: 11.0}
    expect:
      min_accuracy: 0.9
    labels: [1, 0, 1, 0]
"""


def read_record(client: Any, run_id: str) -> Any:
    """The step record of MLflow run ``run_id`` in ``client``'s store, through the provider's one reader."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_record import read_step_record

    return read_step_record(MlflowHook(tracking_uri=client.tracking_uri), run_id)


def write_record(client: Any, data: Mapping[str, Any]) -> None:
    """Write step-record JSON as it is (well-formed or not) to run ``data["mlflow_run_id"]``, as any producer could."""
    from airflow_ml_provider.records.tags import RECORD_ARTIFACT_PATH

    client.log_dict(data["mlflow_run_id"], dict(data), RECORD_ARTIFACT_PATH)
