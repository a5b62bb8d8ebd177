"""Read what a past DAG run recorded: its conf, params and every step record (the run manifest)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.model import reference as models
from airflow_ml_provider.records.step_record import RecordError, StepRecord
from airflow_ml_provider.records.tags import (
    MANIFEST_DAG_RUN,
    MANIFEST_DIR,
    MANIFEST_STEPS,
    TAG_PARENT_RUN,
    TAG_TRAINING_RUN,
)

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook


class ReproductionError(AirflowMLError, RuntimeError):
    """The target cannot be reproduced; the message says why and what to do."""


@dataclass
class RecordedRun:
    """One DAG run as its manifest recorded it."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    params: dict[str, Any]
    steps: dict[str, StepRecord] = field(default_factory=dict)  # by task_id


def resolve_target(hook: MlflowHook, target: str) -> models.ModelRef:
    """``models:/name/version`` or ``models:/name@alias`` -> the version it names now."""
    from mlflow.exceptions import MlflowException

    parsed = models.parse_model_uri(target)
    if isinstance(parsed, models.ModelAlias):
        name, alias = parsed.name, parsed.alias
        try:
            version = hook.alias_version(name, alias)
        except MlflowException as e:
            raise ReproductionError(
                f"{target}: alias {alias!r} of model {name!r} cannot be resolved: {e.message}"
            ) from None
        if version is None:
            raise ReproductionError(
                f"{target}: alias {alias!r} of model {name!r} cannot be resolved: it is not set; "
                f"name a version instead (models:/{name}/<version>)"
            )
        return models.ModelRef(name, version)
    try:
        return models.ModelRef.parse(target, "target")
    except models.ModelReferenceError as e:
        raise ReproductionError(f"{e}; or 'models:/<name>@<alias>'") from None


def parent_run_of_version(hook: MlflowHook, ref: models.ModelRef) -> str:
    version = models.get_version(hook, ref)
    training_run_id = version.tags.get(TAG_TRAINING_RUN)
    if not training_run_id:
        raise ReproductionError(f"{ref.uri} was not trained by TrainOperator: no {TAG_TRAINING_RUN} tag")
    parent = hook.get_run(training_run_id).data.tags.get(TAG_PARENT_RUN)
    if not parent:
        raise ReproductionError(f"training run {training_run_id} of {ref.uri} has no parent DAG-run run")
    return parent


def load_recorded_run(hook: MlflowHook, parent_run_id: str) -> RecordedRun:
    """Read the manifest (``airflow_ml/manifest/``) of the DAG run whose MLflow parent run is given;
    every step record in it is parsed strictly (one that does not parse is a :class:`ReproductionError`)."""
    try:
        with hook.download_artifacts(parent_run_id, MANIFEST_DIR) as local:
            return _read_manifest(parent_run_id, local)
    except ReproductionError:
        raise
    except Exception as e:
        raise ReproductionError(f"run manifest of MLflow run {parent_run_id} cannot be read: {e}") from e


def _read_manifest(parent_run_id: str, local: Path) -> RecordedRun:
    header_file = local / MANIFEST_DAG_RUN
    if not header_file.is_file():
        raise ReproductionError(f"run manifest of MLflow run {parent_run_id} has no {MANIFEST_DAG_RUN}")
    header = json.loads(header_file.read_text())
    try:
        steps = {
            path.stem: StepRecord.from_dict(json.loads(path.read_text()))
            for path in sorted((local / MANIFEST_STEPS).glob("*.json"))
        }
    except RecordError as e:
        raise ReproductionError(f"run manifest of MLflow run {parent_run_id}: {e}") from None
    return RecordedRun(header["dag_id"], header["run_id"], header.get("conf") or {}, header.get("params") or {}, steps)
