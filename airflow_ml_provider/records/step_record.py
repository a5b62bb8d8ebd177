"""The step record: what one ML step read, wrote, used and decided.

Each operator writes one as the MLflow artifact ``airflow_ml/step_record.json`` of its step run.
It is the single source of truth that the gate, lineage and reproduction read back.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

RECORD_ARTIFACT_DIR = "airflow_ml"
RECORD_FILE = "step_record.json"
RECORD_ARTIFACT_PATH = f"{RECORD_ARTIFACT_DIR}/{RECORD_FILE}"
SCHEMA_VERSION = 1


class RecordError(RuntimeError):
    """A step record is missing or unreadable; the gate treats this as failed evidence."""


@dataclass
class StepRecord:
    step: str
    mlflow_run_id: str
    airflow: dict[str, Any]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    #: The user's callable as errors show it: ``<file relative to the DAGs folder>:<qualname>``, e.g.
    #: ``retrain.py:train`` (``lineage.environment.callable_name``).
    code: str | None = None
    #: The user's callable in detail (see ``lineage.environment.code_info``): source sha256, git commit, dirty flag.
    code_identity: dict[str, Any] | None = None
    #: Python, platform, package versions + digest of all installed, and ``hardware`` (``lineage.environment``).
    environment: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    #: What the step returned through XCom, so a reproduction can reuse it (``--from-step``).
    returned: Any = None
    error: str | None = None
    recorded_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_record(client: MlflowClient, record: StepRecord) -> None:
    client.log_dict(record.mlflow_run_id, record.to_dict(), RECORD_ARTIFACT_PATH)


def read_record(client: MlflowClient, run_id: str) -> StepRecord:
    """Download and parse the step record of ``run_id``; any problem is a :class:`RecordError`."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, RECORD_ARTIFACT_PATH, tmp)
            data = json.loads(Path(local).read_text())
    except Exception as e:
        raise RecordError(f"step record of MLflow run {run_id} is missing or unreadable: {e}") from e
    if not isinstance(data, Mapping) or "step" not in data:
        raise RecordError(f"step record of MLflow run {run_id} is not a step record")
    return StepRecord.from_dict(data)
