"""One MLflow run per ML step, nested under one parent run per Airflow DAG run.

The step run is tagged with the Airflow identifiers (and the OpenLineage run id when the
OpenLineage provider is active) so that MLflow and Airflow can be walked from one to the other.

The parent run's status is the DAG run's outcome as far as its steps are recorded, recomputed from
all its step runs whenever a step starts or ends (:func:`dag_run_status`): FAILED when the latest
try of any step failed, RUNNING while any step is running, FINISHED when every step that started
has finished and none failed. "All ran" is known this way: a task only has a step run once it
started, and a task that never starts because an upstream step failed leaves that FAILED step in
place. Between two tasks (one finished, the next not yet started) the parent shows FINISHED for a
moment; Airflow tasks that are not ML steps (plain Python tasks) are not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_ml_provider.records.json_safe import json_safe, short_text
from airflow_ml_provider.records.resources import ResourceMeter, resource_metrics
from airflow_ml_provider.records.step_record import AirflowIds, StepRecord, write_step_record
from airflow_ml_provider.records.tags import (
    KIND_DAG_RUN,
    KIND_STEP,
    MANIFEST_DAG_RUN,
    MANIFEST_DIR,
    TAG_CODE_CALLABLE,
    TAG_CODE_GIT_COMMIT,
    TAG_CODE_SHA,
    TAG_DAG_ID,
    TAG_ENV_DIGEST,
    TAG_KIND,
    TAG_MANIFEST,
    TAG_MAP_INDEX,
    TAG_OL_RUN_ID,
    TAG_PARENT_RUN,
    TAG_RUN_ID,
    TAG_STEP,
    TAG_TASK_ID,
    TAG_TRY,
    manifest_step_artifact,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.data.datasets import DatasetRef
    from airflow_ml_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

#: Attribute of the running operator holding its open :class:`StepRun`, read by its lineage methods.
STEP_RUN_ATTRIBUTE = "_ml_step_run"
_PARAM_MAX_LEN = 6000  # MLflow's limit for a param value
#: MLflow run statuses that count as a failed step (KILLED: the run was stopped from outside).
_FAILED_STATUSES = frozenset({"FAILED", "KILLED"})
#: Times a step re-checks the parent status after writing it (see :func:`_reconcile_parent`).
_RECONCILE_ROUNDS = 5


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


def _find_parent_runs(hook: MlflowHook, experiment_id: str, ids: Mapping[str, Any]) -> list[Any]:
    query = (
        f"tags.`{TAG_KIND}` = '{KIND_DAG_RUN}' and tags.`{TAG_DAG_ID}` = '{ids['dag_id']}' "
        f"and tags.`{TAG_RUN_ID}` = '{ids['run_id']}'"
    )
    runs = hook.search_runs([experiment_id], query, max_results=10)
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


class ParentRun(NamedTuple):
    """The DAG run's parent run as a step finds it: its id, status and whether its manifest is written."""

    run_id: str
    status: str
    has_manifest: bool


def get_or_create_parent_run(hook: MlflowHook, experiment_id: str, ids: Mapping[str, Any]) -> ParentRun:
    """The parent run of this DAG run, creating it once even when tasks race to create it."""
    found = _find_parent_runs(hook, experiment_id, ids)
    if not found:
        created = hook.create_run(
            experiment_id,
            f"{ids['dag_id']} {ids['run_id']}",
            {TAG_KIND: KIND_DAG_RUN, TAG_DAG_ID: ids["dag_id"], TAG_RUN_ID: ids["run_id"]},
        )
        found = _find_parent_runs(hook, experiment_id, ids)
        if found[0].info.run_id != created.info.run_id:  # a concurrent task created one first: keep theirs
            hook.delete_run(created.info.run_id)
    winner = found[0]
    return ParentRun(winner.info.run_id, winner.info.status, TAG_MANIFEST in winner.data.tags)


def dag_run_status(steps: Iterable[Mapping[str, Any]]) -> str:
    """The parent run's status from its step runs; pure.

    Each step is ``{"task_id", "map_index", "try_number", "start_time", "status"}`` (MLflow run
    status). Only the latest try of each task (and map index) counts, so a task that failed and then
    succeeded on retry is not a failure. Any failed (or killed) latest try -> ``FAILED``; else any
    running (or scheduled) one -> ``RUNNING``; else ``FINISHED``. No step at all -> ``RUNNING``:
    nothing has finished yet.
    """
    latest: dict[tuple[str, int], Mapping[str, Any]] = {}
    for step in steps:
        key = (str(step["task_id"]), int(step.get("map_index", -1)))
        current = latest.get(key)
        if current is None or _attempt(step) >= _attempt(current):
            latest[key] = step
    statuses = {str(s["status"]) for s in latest.values()}
    if statuses & _FAILED_STATUSES:
        return "FAILED"
    if not statuses or statuses - {"FINISHED"}:
        return "RUNNING"
    return "FINISHED"


def _attempt(step: Mapping[str, Any]) -> tuple[int, int]:
    """Which of a task's step runs is the latest: higher try number, then later start."""
    return int(step.get("try_number", 0)), int(step.get("start_time") or 0)


def _step_runs(hook: MlflowHook, parent_run_id: str, experiment_id: str) -> list[dict[str, Any]]:
    """The step runs under a parent, as :func:`dag_run_status` reads them."""
    steps: list[dict[str, Any]] = []
    for run in hook.child_runs(parent_run_id, f"tags.`{TAG_KIND}` = '{KIND_STEP}'", experiment_id):
        tags = run.data.tags
        steps.append(
            {
                "task_id": tags.get(TAG_TASK_ID, run.info.run_name),
                "map_index": int(tags.get(TAG_MAP_INDEX, "-1")),
                "try_number": _try_number(run),
                "start_time": run.info.start_time,
                "status": run.info.status,
            }
        )
    return steps


def _try_number(run: Any) -> int:
    """The Airflow try a step run was opened by (0 when its tag is missing or not a number)."""
    value = run.data.tags.get(TAG_TRY, "0")
    return int(value) if value.isdigit() else 0


def earlier_attempts(hook: MlflowHook, current: StepRun) -> list[Any]:
    """The step runs of this task instance's earlier tries (same DAG run, task and map index), oldest first.

    A try killed from outside (SIGKILL, a lost worker) never closed its run or cleaned up after itself;
    its retry finds what it left through these runs.
    """
    ids = current.record.airflow
    query = (
        f"tags.`{TAG_KIND}` = '{KIND_STEP}' and tags.`{TAG_TASK_ID}` = '{ids.task_id}' "
        f"and tags.`{TAG_MAP_INDEX}` = '{ids.map_index}'"
    )
    runs = [
        run
        for run in hook.child_runs(current.parent_run_id, query, current.experiment_id)
        if run.info.run_id != current.run_id and _try_number(run) < ids.try_number
    ]
    return sorted(runs, key=lambda run: (_try_number(run), run.info.start_time))


def _reconcile_parent(hook: MlflowHook, parent_run_id: str, experiment_id: str) -> str:
    """Set the parent run's status to :func:`dag_run_status` of its step runs, whatever the order steps end in.

    Each step's own status is written before this runs, so of two steps ending together the one that
    lists last sees both ended and computes the truth. The other may have listed before and computes
    RUNNING; written last, that would stay. So a step that writes RUNNING lists the step runs again and
    writes again until the listing agrees with what it wrote. FINISHED and FAILED need no second look:
    FINISHED was computed from a listing in which every latest try had ended, FAILED from one with a failed
    latest try, and only a step starting after that listing can change them, which recomputes the status
    when it closes (and at once when it opens under a FAILED parent, as a retry may: see
    :func:`_reopen_parent`). The parent is not read first: the status is written whatever it was (writing
    the status it already has changes nothing but its end time), one request instead of two.
    """
    status = dag_run_status(_step_runs(hook, parent_run_id, experiment_id))
    for _ in range(_RECONCILE_ROUNDS):
        hook.set_run_status(parent_run_id, status)
        if status != "RUNNING":
            return status
        listed = dag_run_status(_step_runs(hook, parent_run_id, experiment_id))
        if listed == status:
            return status
        status = listed
    log.warning("Status of the DAG-run MLflow run %s kept changing; last set to %s", parent_run_id, status)
    return status


def _reopen_parent(hook: MlflowHook, parent_run_id: str, status: str, experiment_id: str) -> None:
    """The parent's status once a step run is open, without listing every step where it can be told.

    With this step running the parent is RUNNING, or FAILED when another step's latest try failed. So a
    RUNNING parent stays; a FINISHED one (the previous step closed it) becomes RUNNING, since a failed
    step would have left it FAILED; a FAILED one may be this task's retry and is recomputed from all the
    step runs. A step failing at the same moment can leave the parent RUNNING for a while: every step's
    close recomputes it from all the step runs (:func:`_reconcile_parent`), so the last one leaves it right.
    """
    if status == "FINISHED":
        hook.set_run_status(parent_run_id, "RUNNING")
    elif status != "RUNNING":
        _reconcile_parent(hook, parent_run_id, experiment_id)


def _write_dag_run_manifest(hook: MlflowHook, parent: ParentRun, context: Context) -> None:
    """Record the DAG run's identity and conf on the parent run, then tag the parent so that later steps skip it.

    The content is the same from every step of the DAG run (its conf and params do not change), so it is
    written once. Steps that start together may both find the tag unset and both write the same file; a step
    that dies between the file and the tag leaves the next one to write both.
    """
    if parent.has_manifest:
        return
    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {})
    ids = airflow_ids(context)
    path = f"{MANIFEST_DIR}/{MANIFEST_DAG_RUN}"
    hook.log_dict(
        parent.run_id,
        {
            "dag_id": ids["dag_id"],
            "run_id": ids["run_id"],
            "conf": conf,
            "params": json_safe(dict(context.get("params") or {})),
        },
        path,
    )
    hook.log_batch(parent.run_id, tags={TAG_MANIFEST: path})


class StepRun:
    """
    An open MLflow run for one step, and the record it will write.

    Params, metrics and tags the step logs are kept and sent in one ``log_batch`` when the step closes
    (:meth:`flush`), with what it used: one request instead of one per call. Nothing reads a step run's
    params, metrics or step tags before it has closed (the gate and the lineage read finished runs); the
    tags that find a run while it is open (its task, try and parent) are set when it is created.
    """

    #: MLflow experiment id and tracking URI (credentials stripped), for the lineage link to MLflow.
    experiment_id: str | None = None
    tracking_uri: str | None = None

    def __init__(self, hook: MlflowHook, run_id: str, parent_run_id: str, record: StepRecord) -> None:
        self.hook = hook
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self.record = record
        self._params: dict[str, str] = {}
        self._metrics: dict[str, float] = {}
        self._tags: dict[str, str] = {}

    def flush(self, metrics: Mapping[str, float] | None = None) -> None:
        """Send what was logged since the last flush, plus ``metrics``, in one request."""
        all_metrics = {**self._metrics, **(metrics or {})}
        if self._params or all_metrics or self._tags:
            self.hook.log_batch(self.run_id, params=self._params, metrics=all_metrics, tags=self._tags)
        self._params, self._metrics, self._tags = {}, {}, {}

    def fail(self, error: str) -> None:
        """Mark the step failed without raising: it ran and recorded everything, but its outcome is a failure
        (a gate whose verdict failed). The run ends FAILED with ``error`` in its record."""
        self.record.status, self.record.error = "failed", error

    def log_params(self, params: Mapping[str, Any]) -> None:
        from airflow_ml_provider.records.redaction import redact_secrets

        params = redact_secrets(params)
        self.record.params.update(params)
        for key, value in params.items():
            text = short_text(value, _PARAM_MAX_LEN)
            held = self._params.get(str(key))
            if held is not None and held != text:  # MLflow refuses to change a param: say so now, not at close
                raise ValueError(f"param {key!r} was already logged as {held!r}; it cannot change to {text!r}")
            self._params[str(key)] = text

    def log_metrics(self, metrics: Mapping[str, float], prefix: str = "") -> None:
        self._metrics.update({f"{prefix}{k}": float(v) for k, v in metrics.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self.hook.log_dict(self.run_id, data, artifact_file)

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
        self.hook.log_inputs(self.run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", role)])])


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
    visible in MLflow and no downstream check mistakes it for success; so does a step that called
    :meth:`StepRun.fail`. After the step run closes, the parent's status is recomputed from all its
    step runs (:func:`_reconcile_parent`). The record also gets the
    environment (packages, hardware) and, with ``code_fn``, the identity of the user's callable; the
    open run is attached to the running operator (``STEP_RUN_ATTRIBUTE``) for its lineage methods.
    What the body used (wall/CPU time, peak memory, GPUs: ``records.resources``) is measured around the
    ``yield`` only, so this function's own MLflow calls are not counted, and recorded for failed steps too.
    """
    experiment_id = hook.get_or_create_experiment(experiment_name)
    ids = airflow_ids(context)
    parent = get_or_create_parent_run(hook, experiment_id, ids)
    parent_id = parent.run_id
    tags = {
        TAG_PARENT_RUN: parent_id,
        TAG_KIND: KIND_STEP,
        TAG_STEP: step,
        TAG_DAG_ID: ids["dag_id"],
        TAG_RUN_ID: ids["run_id"],
        TAG_TASK_ID: ids["task_id"],
        TAG_TRY: str(ids["try_number"]),
        TAG_MAP_INDEX: str(ids["map_index"]),
    }
    ol_run_id = _openlineage_run_id(context)
    if ol_run_id:
        tags[TAG_OL_RUN_ID] = ol_run_id
    environment, code_identity = _collect_environment(code_fn)
    tags.update(_identity_tags(environment, code_identity))
    run = hook.create_run(experiment_id, ids["task_id"], tags)
    _write_dag_run_manifest(hook, parent, context)
    _reopen_parent(hook, parent_id, parent.status, experiment_id)
    record = StepRecord(step=step, mlflow_run_id=run.info.run_id, airflow=AirflowIds(**ids), code=code)
    record.environment, record.code_identity = environment, code_identity
    current = StepRun(hook, run.info.run_id, parent_id, record)
    current.experiment_id = str(experiment_id)
    current.tracking_uri = _safe_uri(hook)
    _attach(context, current)
    log.info("MLflow run %s (parent %s) in experiment %r", run.info.run_id, parent_id, experiment_name)
    meter = ResourceMeter()
    try:
        yield current
    except BaseException as e:
        record.resources = meter.stop()
        record.status, record.error = "failed", f"{type(e).__name__}: {e}"
        _close(current, "FAILED")
        raise
    record.resources = meter.stop()
    if record.status == "failed":  # StepRun.fail(): recorded, but the step's outcome is a failure
        _close(current, "FAILED")
        return
    record.status = "success"
    _close(current, "FINISHED")


def _collect_environment(code_fn: Callable[..., Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Environment + hardware (cached per process) and the callable's identity; never fails the step."""
    from airflow_ml_provider.records import environment as env

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
    if code_identity and code_identity.get("callable"):
        tags[TAG_CODE_CALLABLE] = str(code_identity["callable"])
    if environment and environment.get("packagesDigest"):
        tags[TAG_ENV_DIGEST] = str(environment["packagesDigest"])
    if code_identity and code_identity.get("sourceSha256"):
        tags[TAG_CODE_SHA] = str(code_identity["sourceSha256"])
    if code_identity and code_identity.get("gitCommit"):
        dirty = "-dirty" if code_identity.get("gitDirty") else ""
        tags[TAG_CODE_GIT_COMMIT] = f"{code_identity['gitCommit']}{dirty}"
    return tags


def _safe_uri(hook: MlflowHook) -> str | None:
    from airflow_ml_provider.records.redaction import strip_credentials

    try:
        return strip_credentials(hook.tracking_uri)
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
        resources = current.record.resources
        current.flush(None if resources is None else resource_metrics(resources))
        write_step_record(current.hook, current.record)
        # The parent run holds the run manifest: one entry per step, so concurrent steps never collide.
        current.hook.log_dict(
            current.parent_run_id,
            current.record.to_dict(),
            manifest_step_artifact(current.record.airflow.task_id),
        )
        current.hook.set_run_status(current.run_id, status)
        _reconcile_parent(current.hook, current.parent_run_id, str(current.experiment_id))
    except Exception:
        if status == "FINISHED":
            raise
        log.exception("Could not record the failure of MLflow run %s", current.run_id)
