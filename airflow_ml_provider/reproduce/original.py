"""Read what a past DAG run recorded: its conf, params and every step record (the run manifest)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.model import reference as models
from airflow_ml_provider.records.step_record import StepRecord
from airflow_ml_provider.records.step_run import MANIFEST_DIR

if TYPE_CHECKING:
    from mlflow import MlflowClient


class ReproductionError(RuntimeError):
    """The target cannot be reproduced; the message says why and what to do."""


@dataclass
class RecordedRun:
    """One DAG run as its manifest recorded it."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    params: dict[str, Any]
    steps: dict[str, StepRecord] = field(default_factory=dict)  # by task_id


def resolve_target(client: MlflowClient, target: str) -> models.ModelRef:
    """``models:/name/version`` or ``models:/name@alias`` -> the version it names now."""
    from mlflow.exceptions import MlflowException

    if target.startswith("models:/") and "@" in target:
        name, alias = target[len("models:/") :].split("@", 1)
        try:
            return models.ModelRef(name, str(client.get_model_version_by_alias(name, alias).version))
        except MlflowException as e:
            raise ReproductionError(
                f"{target}: alias {alias!r} of model {name!r} cannot be resolved: {e.message}"
            ) from None
    try:
        return models.ModelRef.parse(target, "target")
    except models.ModelReferenceError as e:
        raise ReproductionError(f"{e}; or 'models:/<name>@<alias>'") from None


def parent_run_of_version(client: MlflowClient, ref: models.ModelRef) -> str:
    version = models.get_version(client, ref)
    training_run_id = version.tags.get(models.TAG_TRAINING_RUN)
    if not training_run_id:
        raise ReproductionError(f"{ref.uri} was not trained by TrainOperator: no {models.TAG_TRAINING_RUN} tag")
    parent = client.get_run(training_run_id).data.tags.get("mlflow.parentRunId")
    if not parent:
        raise ReproductionError(f"training run {training_run_id} of {ref.uri} has no parent DAG-run run")
    return parent


def load_recorded_run(client: MlflowClient, parent_run_id: str) -> RecordedRun:
    """Read the manifest (``airflow_ml/manifest/``) of the DAG run whose MLflow parent run is given."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(parent_run_id, MANIFEST_DIR, tmp))
        except Exception as e:
            raise ReproductionError(f"run manifest of MLflow run {parent_run_id} cannot be read: {e}") from e
        header_file = local / "dag_run.json"
        if not header_file.is_file():
            raise ReproductionError(f"run manifest of MLflow run {parent_run_id} has no dag_run.json")
        header = json.loads(header_file.read_text())
        steps = {
            path.stem: StepRecord.from_dict(json.loads(path.read_text()))
            for path in sorted((local / "steps").glob("*.json"))
        }
    return RecordedRun(header["dag_id"], header["run_id"], header.get("conf") or {}, header.get("params") or {}, steps)
