"""Helpers shared by the operator tests: a minimal Airflow context and checks on what a step left behind.

The operators are called as ``operator.execute(context)``. The only thing they read from the context
is ``context["ti"]`` (dag_id, run_id, task_id, try_number, map_index), so the context here carries a
small stand-in for Airflow's runtime task instance. The OpenLineage run id cannot be computed from
it; ``tracking._openlineage_run_id`` tolerates that by design. Everything else is real: the MLflow
SQLite store and artifact root set up by tests/conftest.py, Great Expectations, files on disk.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from airflow_ml_provider.records.step_record import StepRecord
from tests.support import read_record


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- MLflow --------------------------------------------------------------------------------------


def step_runs(client: Any, context: dict[str, Any]) -> list[Any]:
    """The MLflow step runs this context's task opened (experiment = the DAG id, the default)."""
    ti = context["ti"]
    experiment = client.get_experiment_by_name(ti.dag_id)
    if experiment is None:
        return []
    query = (
        f"tags.`airflow_ml.kind` = 'step' and tags.`airflow.run_id` = '{ti.run_id}' "
        f"and tags.`airflow.task_id` = '{ti.task_id}'"
    )
    return client.search_runs([experiment.experiment_id], filter_string=query, max_results=10)


def the_step_run(client: Any, context: dict[str, Any]) -> Any:
    runs = step_runs(client, context)
    assert len(runs) == 1, f"expected exactly one MLflow step run, found {len(runs)}"
    return runs[0]


def assert_step_failed(client: Any, context: dict[str, Any], error: BaseException, *must_name: str) -> StepRecord:
    """The step's MLflow run is FAILED and its step record says ``failed`` with this error."""
    run = the_step_run(client, context)
    assert run.info.status == "FAILED", f"MLflow step run {run.info.run_id} is {run.info.status}"
    record = read_record(client, run.info.run_id)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith(type(error).__name__ + ":"), record.error
    for text in must_name:
        assert text in record.error, f"{text!r} not in the recorded error {record.error!r}"
    assert record.recorded_at
    return record


def assert_step_succeeded(client: Any, context: dict[str, Any]) -> StepRecord:
    run = the_step_run(client, context)
    assert run.info.status == "FINISHED"
    record = read_record(client, run.info.run_id)
    assert record.status == "success" and record.error is None
    return record


def model_versions(client: Any, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{name}'")), key=int)


# --- files ---------------------------------------------------------------------------------------


def artifact_root() -> Path:
    """The artifact root the operators resolve from ``[ml_provider] artifact_root`` (tests/conftest.py)."""
    return Path(os.environ["AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT"])


def snapshot(directory: Path) -> dict[str, int]:
    """File name -> mtime of every file (hidden ones included) directly in ``directory``."""
    if not directory.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir() if p.is_file()}


def assert_nothing_written(directory: Path, before: dict[str, int]) -> None:
    """No new or rewritten dataset in ``directory`` and no temporary ``.incomplete-*`` file left over."""
    after = snapshot(directory)
    new = sorted(name for name in after if name not in before or after[name] != before[name])
    assert not [n for n in new if n.endswith(".parquet")], f"datasets written by a failed step: {new}"
    leftovers = [n for n in after if n.startswith(".incomplete-")]
    assert not leftovers, f"half-written files left in {directory}: {leftovers}"
