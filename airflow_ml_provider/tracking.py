"""One MLflow run per ML step, nested under one parent run per Airflow DAG run.

The step run is tagged with the Airflow identifiers (and the OpenLineage run id when the
OpenLineage provider is active) so that MLflow and Airflow can be walked from one to the other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.records.step_record import StepRecord, write_record

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient

    from airflow_ml_provider.datasets import DatasetRef
    from airflow_ml_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

TAG_KIND = "airflow_ml.kind"
TAG_STEP = "airflow_ml.step"
TAG_DAG_ID = "airflow.dag_id"
TAG_RUN_ID = "airflow.run_id"
TAG_TASK_ID = "airflow.task_id"
TAG_TRY = "airflow.try_number"
TAG_OL_RUN_ID = "openlineage.run_id"
TAG_CODE_SHA = "airflow_ml.code.sha256"
TAG_CODE_GIT_COMMIT = "airflow_ml.code.git_commit"
TAG_ENV_DIGEST = "airflow_ml.environment.packages_digest"
#: Attribute of the running operator holding its open :class:`StepRun`, read by its lineage methods.
STEP_RUN_ATTRIBUTE = "_ml_step_run"
_PARAM_MAX_LEN = 6000  # MLflow's limit for a param value
MANIFEST_DIR = "airflow_ml/manifest"


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


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(dict(value or {}), default=str))


def _write_dag_run_manifest(client: MlflowClient, parent_run_id: str, context: Context) -> None:
    """Record the DAG run's identity and conf on the parent run (same content from every step)."""
    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {})
    ids = airflow_ids(context)
    client.log_dict(
        parent_run_id,
        {"dag_id": ids["dag_id"], "run_id": ids["run_id"], "conf": conf, "params": _json_safe(context.get("params"))},
        f"{MANIFEST_DIR}/dag_run.json",
    )


class StepRun:
    """An open MLflow run for one step, and the record it will write."""

    #: MLflow experiment id and tracking URI (credentials stripped), for the lineage link to MLflow.
    experiment_id: str | None = None
    tracking_uri: str | None = None

    def __init__(self, client: MlflowClient, run_id: str, parent_run_id: str, record: StepRecord) -> None:
        self.client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.record = record

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        from airflow_ml_provider.lineage.datasets import redact_secrets

        params = redact_secrets(params)
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

    def record_input(self, role: str, ref: DatasetRef) -> None:
        """Record a dataset the step read, in the step record and as an MLflow dataset input.

        MLflow's own dataset digest hashes only the first 10,000 rows, so the input is logged with
        our content fingerprint instead: its first 32 hex digits as MLflow's digest (the registry
        column holds 36 characters) and the whole fingerprint in the dataset profile.
        """
        import json as _json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        self.record.inputs.append({"role": role, **ref.to_dict()})
        dataset = Dataset(
            name=f"{role}:{ref.uri.rsplit('/', 1)[-1]}",
            digest=ref.fingerprint.split(":", 1)[-1][:32],
            source_type="local" if ref.is_local else "fsspec",
            source=_json.dumps({"uri": ref.uri}),
            schema=_json.dumps({"mlflow_colspec": [{"name": n, "type": t} for n, t in ref.schema.items()]}),
            profile=_json.dumps({"fingerprint": ref.fingerprint, "num_rows": ref.rows, "size_bytes": ref.size_bytes}),
        )
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", role)])])


@contextmanager
def step_run(
    hook: MlflowHook,
    experiment_name: str,
    context: Context,
    step: str,
    code: str | None,
    code_fn: Callable[..., Any] | None = None,
) -> Iterator[StepRun]:
    """Open the step's MLflow run; on exit write the step record and close the run with its status.

    A failing step still gets its record (status ``failed`` with the error), so the failure is
    visible in MLflow and no downstream check mistakes it for success. The record also gets the
    environment (packages, hardware) and, with ``code_fn``, the identity of the user's callable; the
    open run is attached to the running operator (``STEP_RUN_ATTRIBUTE``) for its lineage methods.
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
    environment, code_identity = _collect_environment(code_fn)
    tags.update(_identity_tags(environment, code_identity))
    run = client.create_run(experiment_id, run_name=ids["task_id"], tags=tags)
    _write_dag_run_manifest(client, parent_id, context)
    record = StepRecord(step=step, mlflow_run_id=run.info.run_id, airflow=ids, code=code)
    record.environment, record.code_identity = environment, code_identity
    current = StepRun(client, run.info.run_id, parent_id, record)
    current.experiment_id = str(experiment_id)
    current.tracking_uri = _safe_uri(hook)
    _attach(context, current)
    log.info("MLflow run %s (parent %s) in experiment %r", run.info.run_id, parent_id, experiment_name)
    try:
        yield current
    except BaseException as e:
        record.status, record.error = "failed", f"{type(e).__name__}: {e}"
        _close(current, "FAILED")
        raise
    record.status = "success"
    _close(current, "FINISHED")


def _collect_environment(code_fn: Callable[..., Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Environment + hardware (cached per process) and the callable's identity; never fails the step."""
    from airflow_ml_provider.lineage import environment as env

    code_identity = None
    if code_fn is not None:
        try:
            code_identity = env.code_info(code_fn)
        except Exception:
            log.warning("Could not identify the code of %r", code_fn, exc_info=True)
    try:
        extra = [code_identity["distribution"]] if code_identity and code_identity.get("distribution") else []
        environment = {**env.environment_info(extra), "hardware": env.hardware_info()}
    except Exception:
        log.warning("Could not describe the environment", exc_info=True)
        environment = None
    return environment, code_identity


def _identity_tags(environment: Mapping[str, Any] | None, code_identity: Mapping[str, Any] | None) -> dict[str, str]:
    tags = {}
    if environment and environment.get("packagesDigest"):
        tags[TAG_ENV_DIGEST] = str(environment["packagesDigest"])
    if code_identity and code_identity.get("sourceSha256"):
        tags[TAG_CODE_SHA] = str(code_identity["sourceSha256"])
    if code_identity and code_identity.get("gitCommit"):
        dirty = "-dirty" if code_identity.get("gitDirty") else ""
        tags[TAG_CODE_GIT_COMMIT] = f"{code_identity['gitCommit']}{dirty}"
    return tags


def _safe_uri(hook: MlflowHook) -> str | None:
    from airflow_ml_provider.lineage.datasets import strip_credentials

    try:
        return strip_credentials(hook.settings.tracking_uri)
    except Exception:
        return None


def _attach(context: Context, current: StepRun) -> None:
    """Let the running operator's lineage methods (run later, in the listener's fork) see this run."""
    try:
        task = context["ti"].task
        setattr(task, STEP_RUN_ATTRIBUTE, current)
    except Exception:
        log.debug("Could not attach the step run to the task", exc_info=True)


def _close(current: StepRun, status: str) -> None:
    current.record.recorded_at = datetime.now(timezone.utc).isoformat()
    try:
        write_record(current.client, current.record)
        # The parent run holds the run manifest: one entry per step, so concurrent steps never collide.
        current.client.log_dict(
            current.parent_run_id,
            current.record.to_dict(),
            f"{MANIFEST_DIR}/steps/{current.record.airflow['task_id']}.json",
        )
        current.client.set_terminated(current.run_id, status)
        # The DAG-run parent shows the outcome of its latest step: a failed step marks it FAILED.
        current.client.set_terminated(current.parent_run_id, status)
    except Exception:
        if status == "FINISHED":
            raise
        log.exception("Could not record the failure of MLflow run %s", current.run_id)
