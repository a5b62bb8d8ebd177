"""One MLflow run per ML step, nested under one parent run per Airflow DAG run.

The step run is tagged with the Airflow identifiers (and the OpenLineage run id when the
OpenLineage provider is active) so that MLflow and Airflow can be walked from one to the other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.records.step_record import StepRecord, write_record

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient

    from airflow_ml_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

TAG_KIND = "airflow_ml.kind"
TAG_STEP = "airflow_ml.step"
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TASK_ID = "airflow.task_id"
TAG_TRY = "airflow.try_number"
TAG_OL_RUN_ID = "openlineage.run_id"
_PARAM_MAX_LEN = 6000  # MLflow's limit for a param value


def airflow_ids(context: Context) -> dict[str, Any]:
    ti = context["ti"]
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try_number": ti.try_number,
        "map_index": ti.map_index,
    }


def _openlineage_run_id(context: Context) -> str | None:
    """The OpenLineage run id the provider's listener uses for this task try, if it can be computed."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_run_id

        return str(lineage_run_id(context["ti"]))
    except Exception:  # lineage must never break a task
        return None


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= _PARAM_MAX_LEN else text[: _PARAM_MAX_LEN - 3] + "..."


def _find_parent_runs(client: MlflowClient, experiment_id: str, ids: Mapping[str, Any]) -> list[Any]:
    query = (
        f"tags.`{TAG_KIND}` = 'dag_run' and tags.`{TAG_DAG_ID}` = '{ids['dag_id']}' "
        f"and tags.`{TAG_RUN_ID}` = '{ids['run_id']}'"
    )
    runs = client.search_runs([experiment_id], filter_string=query, max_results=10)
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def get_or_create_parent_run(client: MlflowClient, experiment_id: str, ids: Mapping[str, Any]) -> str:
    """Return the parent run of this DAG run, creating it once even when tasks race to create it."""
    existing = _find_parent_runs(client, experiment_id, ids)
    if existing:
        return existing[0].info.run_id
    created = client.create_run(
        experiment_id,
        run_name=f"{ids['dag_id']} {ids['run_id']}",
        tags={TAG_KIND: "dag_run", TAG_DAG_ID: ids["dag_id"], TAG_RUN_ID: ids["run_id"]},
    )
    winner = _find_parent_runs(client, experiment_id, ids)[0].info.run_id
    if winner != created.info.run_id:  # a concurrent task created one first: keep theirs
        client.delete_run(created.info.run_id)
    return winner


class StepRun:
    """An open MLflow run for one step, and the record it will write."""

    def __init__(self, client: MlflowClient, run_id: str, parent_run_id: str, record: StepRecord) -> None:
        self.client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.record = record

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.record.params.update(params)
        if params:
            self.client.log_batch(
                self.run_id, params=[Param(str(k), _param_value(v)) for k, v in params.items()]
            )

    def log_metrics(self, metrics: Mapping[str, float], prefix: str = "") -> None:
        from mlflow.entities import Metric

        now = int(datetime.now(timezone.utc).timestamp() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(f"{prefix}{k}", float(v), now, 0) for k, v in metrics.items()]
        )

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)


@contextmanager
def step_run(
    hook: MlflowHook, experiment_name: str, context: Context, step: str, code: str | None
) -> Iterator[StepRun]:
    """Open the step's MLflow run; on exit write the step record and close the run with its status.

    A failing step still gets its record (status ``failed`` with the error), so the failure is
    visible in MLflow and no downstream check mistakes it for success.
    """
    client = hook.get_client()
    experiment_id = hook.get_or_create_experiment(experiment_name)
    ids = airflow_ids(context)
    parent_id = get_or_create_parent_run(client, experiment_id, ids)
    tags = {
        "mlflow.parentRunId": parent_id,
        TAG_KIND: "step",
        TAG_STEP: step,
        TAG_DAG_ID: ids["dag_id"],
        TAG_RUN_ID: ids["run_id"],
        TAG_TASK_ID: ids["task_id"],
        TAG_TRY: str(ids["try_number"]),
    }
    ol_run_id = _openlineage_run_id(context)
    if ol_run_id:
        tags[TAG_OL_RUN_ID] = ol_run_id
    run = client.create_run(experiment_id, run_name=ids["task_id"], tags=tags)
    record = StepRecord(step=step, mlflow_run_id=run.info.run_id, airflow=ids, code=code)
    current = StepRun(client, run.info.run_id, parent_id, record)
    log.info("MLflow run %s (parent %s) in experiment %r", run.info.run_id, parent_id, experiment_name)
    try:
        yield current
    except BaseException as e:
        record.status, record.error = "failed", f"{type(e).__name__}: {e}"
        _close(current, "FAILED")
        raise
    record.status = "success"
    _close(current, "FINISHED")


def _close(current: StepRun, status: str) -> None:
    current.record.recorded_at = datetime.now(timezone.utc).isoformat()
    try:
        write_record(current.client, current.record)
        current.client.set_terminated(current.run_id, status)
        current.client.set_terminated(current.parent_run_id, "FINISHED")
    except Exception:
        if status == "FINISHED":
            raise
        log.exception("Could not record the failure of MLflow run %s", current.run_id)
