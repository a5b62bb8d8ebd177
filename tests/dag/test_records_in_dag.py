"""What the records of a whole DAG run say (dag.test(), real MLflow store, OpenLineage file transport).

The DAGs are in tests/dag/dags and run as a user runs them, ``airflow dags test <dag_id> -c <conf>``
(``dag.test()``) in a subprocess whose ``[core] dags_folder`` is that directory, sharing this session's
Airflow DB, MLflow store and OpenLineage events file.

- The DAG run's parent MLflow run is FAILED when any step failed, however the steps are ordered, and
  when the gate's verdict failed; FINISHED when every step succeeded, counting only the latest try.
- The code a step ran is named by its file relative to the DAGs folder, never by the module name
  Airflow imports DAG files under (``unusual_prefix_<hash>_<file>``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import EVENTS, RAW_URI, ROOT

DAGS_FOLDER = Path(__file__).parent / "dags"
MODEL = "records_model"
pytestmark = pytest.mark.dag


def _dag_runs(dag_id: str) -> dict[str, dict[str, str]]:
    """Task states of every run of ``dag_id`` in the metadata DB, by run id."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    runs: dict[str, dict[str, str]] = {}
    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id):
            runs.setdefault(ti.run_id, {})[ti.task_id] = str(ti.state)
    return runs


class DagRunRecords:
    """One finished DAG run: task states, its MLflow runs and the OpenLineage events it emitted."""

    def __init__(self, client: Any, dag_id: str, conf: dict[str, Any]) -> None:
        offset = EVENTS.stat().st_size if EVENTS.exists() else 0
        before = set(_dag_runs(dag_id))
        env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER)}
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
        )
        new = set(_dag_runs(dag_id)) - before
        assert len(new) == 1, f"exit {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        [self.run_id] = new
        self.client, self.dag_id, self.tasks = client, dag_id, _dag_runs(dag_id)[self.run_id]
        with EVENTS.open("rb") as f:
            f.seek(offset)
            self.events = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        experiment = client.get_experiment_by_name(dag_id).experiment_id
        runs = client.search_runs([experiment], filter_string=f"tags.`airflow.run_id` = '{self.run_id}'")
        [self.parent] = [r for r in runs if r.data.tags.get("airflow_ml.kind") == "dag_run"]
        self.steps = sorted(
            (r for r in runs if r.data.tags.get("airflow_ml.kind") == "step"), key=lambda r: r.info.start_time
        )

    def step_runs(self, task_id: str) -> list[Any]:
        return [r for r in self.steps if r.data.tags["airflow.task_id"] == task_id]

    def record(self, run: Any) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(self.client.download_artifacts(run.info.run_id, "airflow_ml/step_record.json",
                                                                  tmp)).read_text())

    def complete_event(self, task_id: str) -> dict[str, Any]:
        [event] = [e for e in self.events
                   if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{self.dag_id}.{task_id}"]
        return event


@pytest.fixture(scope="module")
def records(airflow_db: Path, raw_data: Path, mlflow_client: Any, tmp_path_factory: Any) -> Any:
    """Run each DAG once (the first time a test asks for it)."""
    cache: dict[str, DagRunRecords] = {}

    def get(name: str) -> DagRunRecords:
        if name not in cache:
            marker = tmp_path_factory.mktemp("flaky") / "featurize-failed-once"
            dag_id, conf = {
                "good": ("records_retrain", {"raw_uri": str(RAW_URI), "flaky_marker": str(marker)}),
                "gate_fails": ("records_retrain", {"raw_uri": str(RAW_URI), "min_accuracy": 0.999}),
                "simulate_fails_first": (
                    "records_simulate_fails_first", {"raw_uri": str(RAW_URI), "scenarios": "/nonexistent.yaml"}),
                "simulate_fails_last": (
                    "records_simulate_fails_last", {"raw_uri": str(RAW_URI), "scenarios": "/nonexistent.yaml"}),
            }[name]
            cache[name] = DagRunRecords(mlflow_client, dag_id, conf)
        return cache[name]

    return get


def test_a_retried_then_successful_run_ends_finished(records: Any) -> None:
    run = records("good")

    errors = {r.data.tags["airflow.task_id"]: run.record(r)["error"] for r in run.steps if r.info.status != "FINISHED"}
    assert run.tasks == dict.fromkeys(["featurize", "train", "evaluate", "simulate", "gate"], "success"), errors
    tries = run.step_runs("featurize")
    assert [(r.data.tags["airflow.try_number"], r.info.status) for r in tries] == [("1", "FAILED"), ("2", "FINISHED")]
    assert all(r.info.status == "FINISHED" for r in run.steps if r not in tries[:1])
    assert run.parent.info.status == "FINISHED", "only the latest try of a task counts"


def test_a_failed_gate_verdict_fails_the_gate_step_and_the_dag_run(records: Any, mlflow_client: Any) -> None:
    run = records("gate_fails")

    assert run.tasks["gate"] == "failed"
    assert {t: s for t, s in run.tasks.items() if t != "gate"} == dict.fromkeys(
        ["featurize", "train", "evaluate", "simulate"], "success"
    )
    [gate] = run.step_runs("gate")
    assert gate.info.status == "FAILED"
    record = run.record(gate)
    assert record["status"] == "failed"
    assert record["error"].startswith(f"gate FAILED for models:/{MODEL}/")
    assert "metric:accuracy:threshold" in record["error"]
    # The verdict is still recorded in full, on the step run and the version.
    verdict = record["results"]["verdict"]
    assert verdict["passed"] is False
    assert [c["name"] for c in verdict["checks"] if not c["passed"]] == ["metric:accuracy:threshold"]
    version = mlflow_client.get_model_version(MODEL, record["model"]["version"])
    assert version.tags["airflow_ml.gate.status"] == "failed"
    assert version.tags["airflow_ml.gate.run_id"] == gate.info.run_id
    assert run.parent.info.status == "FAILED"


@pytest.mark.parametrize("case", ["simulate_fails_first", "simulate_fails_last"])
def test_a_failed_step_fails_the_dag_run_whichever_sibling_ends_last(records: Any, case: str) -> None:
    run = records(case)

    assert run.tasks["simulate"] == "failed" and run.tasks["evaluate"] == "success"
    [simulate], [evaluate] = run.step_runs("simulate"), run.step_runs("evaluate")
    assert simulate.info.status == "FAILED" and evaluate.info.status == "FINISHED"
    first, last = (simulate, evaluate) if case == "simulate_fails_first" else (evaluate, simulate)
    assert first.info.end_time <= last.info.start_time, "the DAG fixes which step ends last"
    assert run.parent.info.status == "FAILED"


def test_code_is_named_by_its_file_in_the_dags_folder(records: Any) -> None:
    run = records("good")

    for task_id, expected in (("featurize", "records_dags.py:transform"), ("train", "ml_steps/pipeline.py:train")):
        step = run.step_runs(task_id)[-1]
        record = run.record(step)
        assert record["code"] == expected
        assert record["code_identity"]["callable"] == expected
        assert step.data.tags["airflow_ml.code.callable"] == expected
        assert run.complete_event(task_id)["run"]["facets"]["mlCode"]["callable"] == expected
    # Nowhere in what this run recorded: step records, MLflow tags and params, lineage events.
    recorded = json.dumps(
        [run.record(r) for r in run.steps] + [[r.data.tags, r.data.params] for r in [run.parent, *run.steps]]
        + run.events
    )
    assert "unusual_prefix" not in recorded


def test_every_step_records_what_it_used_failed_tries_too(records: Any) -> None:
    """The same figures in the step record, the step run's metrics and the lineage event, for each step
    of the run including featurize's failed first try. No GPU here: ``gpus`` is empty."""
    from airflow_ml_provider.records.resources import PEAK_METHODS

    run = records("good")
    for step in run.steps:
        task_id = step.data.tags["airflow.task_id"]
        used = run.record(step)["resources"]
        assert used["wall_seconds"] > 0 and used["cpu_seconds"] > 0, task_id
        assert used["wall_seconds"] * 1000 <= step.info.end_time - step.info.start_time, "only the body is measured"
        assert used["peak_memory_method"] in PEAK_METHODS and used["peak_memory_bytes"] > 0
        assert used["memory_start_bytes"] > 0 and used["memory_end_bytes"] > 0 and used["gpus"] == []
        peak = "peak_memory_bytes" if used["peak_memory_method"] != "process" else "process_peak_memory_bytes"
        metrics = step.data.metrics
        figures = (("wall_seconds", "wall_seconds"), ("cpu_seconds", "cpu_seconds"), ("peak_memory_bytes", peak))
        for key, name in figures:
            assert metrics[f"airflow_ml.resources.{name}"] == pytest.approx(used[key]), (task_id, name)
        event_type = "COMPLETE" if step.info.status == "FINISHED" else "FAIL"
        events = [e for e in run.events
                  if e["eventType"] == event_type and e["job"]["name"] == f"{run.dag_id}.{task_id}"
                  and e["run"]["facets"].get("mlflowRun", {}).get("runId") == step.info.run_id]
        assert len(events) == 1, (task_id, event_type)
        facet = events[0]["run"]["facets"]["mlResources"]
        assert (facet["wallSeconds"], facet["peakMemoryBytes"]) == (used["wall_seconds"], used["peak_memory_bytes"])
    featurize_tries = [run.record(r)["status"] for r in run.step_runs("featurize")]
    assert featurize_tries == ["failed", "success"]
