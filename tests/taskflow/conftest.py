"""The example pipeline run both ways, each in a fresh state of its own, as a user runs it.

``airflow dags test`` in a subprocess with the README's environment (``make demo``'s ``.demo/env.sh``,
pointed at a temporary state directory): a real Airflow metadata DB, a real MLflow store, OpenLineage
events through the file transport. The classic DAG (``breast_cancer_retrain``) and the TaskFlow one
(``breast_cancer_retrain_taskflow``) register the same model, so each runs in a state of its own: both are
the first version of their model, with no champion, and their records can be compared field by field.
One run of each per test session, shared by the tests.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import BARE, _sourced, readme_env_script
from tests.support import ROOT

CLASSIC, TASKFLOW = "breast_cancer_retrain", "breast_cancer_retrain_taskflow"
MODEL = "breast_cancer_classifier"
STATE_DIRS = ("airflow", "mlflow", "artifacts", "lineage", "data")


@dataclass(frozen=True)
class PipelineRun:
    """One DAG run in its own state directory, and what it left there."""

    dag_id: str
    state: Path
    env: Mapping[str, str]
    output: str

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    def task_states(self) -> dict[str, str]:
        with sqlite3.connect(self.state / "airflow" / "airflow.db") as db:
            rows = db.execute("select task_id, state from task_instance where dag_id = ?", (self.dag_id,))
            return dict(rows.fetchall())

    def events(self) -> list[dict[str, Any]]:
        path = self.state / "lineage" / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def steps(self) -> dict[str, dict[str, Any]]:
        """Per task: its step record (through the provider's reader, as JSON), MLflow tags, params, metrics."""
        from mlflow import MlflowClient

        from airflow_ml_provider.hooks.mlflow import MlflowHook
        from airflow_ml_provider.records.step_record import read_step_record

        hook, client = MlflowHook(tracking_uri=self.tracking_uri), MlflowClient(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.dag_id)
        out = {}
        for run in client.search_runs([experiment.experiment_id], filter_string="tags.`airflow_ml.kind` = 'step'"):
            task_id = run.data.tags["airflow.task_id"]
            assert task_id not in out, f"two step runs for {task_id}"
            out[task_id] = {
                "record": read_step_record(hook, run.info.run_id).to_dict(),
                "tags": dict(run.data.tags),
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
            }
        return out


def _fresh_state(base: Path, name: str) -> tuple[Path, dict[str, str]]:
    state, home = base / name, base / f"{name}-home"
    for d in (home, *(state / s for s in STATE_DIRS)):
        d.mkdir(parents=True)
    env_sh = state / "env.sh"
    env_sh.write_text(readme_env_script(state))
    return state, _sourced(env_sh, home)


def _run(command: list[str], env: Mapping[str, str], cwd: Path) -> str:
    done = subprocess.run(command, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="session")
def pipelines() -> dict[str, PipelineRun]:
    """The classic and the TaskFlow example, each run once with ``airflow dags test`` in a fresh state.

    The raw data and the migrated metadata DB are made once (``make demo``'s steps) and copied."""
    base = Path(tempfile.mkdtemp(prefix="airflow-ml-taskflow-"))
    cwd = base / "cwd"
    cwd.mkdir()
    runs: dict[str, PipelineRun] = {}
    first: Path | None = None
    for dag_id in (CLASSIC, TASKFLOW):
        state, env = _fresh_state(base, dag_id)
        assert "PYTHONPATH" not in env and BARE["PATH"] in env["PATH"]
        if first is None:
            _run(["python", "-m", "dags_examples.breast_cancer.data", env["BREAST_CANCER_RAW_URI"]], env, ROOT)
            _run(["airflow", "db", "migrate"], env, cwd)
            first = state
        else:
            for part in ("data/breast_cancer.parquet", "airflow/airflow.db"):
                shutil.copy2(first / part, state / part)
        output = _run(["airflow", "dags", "test", dag_id], env, cwd)
        runs[dag_id] = PipelineRun(dag_id, state, env, output)
    return runs
