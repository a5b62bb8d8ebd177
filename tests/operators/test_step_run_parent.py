"""The DAG-run parent MLflow run while its steps run one after another (records/step_run.py): FINISHED
once a step closes with every step done, RUNNING again while the next step runs, and a param changed
within a step refused when logged; the DAG run's manifest written once. A real MLflow SQLite store, the step
run opened as the operators open it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.hooks.mlflow import MlflowHook
from airflow_ml_provider.records.step_run import step_run
from airflow_ml_provider.records.tags import MANIFEST_DAG_RUN, MANIFEST_DIR, TAG_MANIFEST
from tests.support import make_context

DAG = "ops_step_run_parent"


def test_the_parent_reopens_while_a_later_step_runs_and_finishes_after_it(mlflow_client: Any) -> None:
    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    first = make_context(DAG, "first")
    with step_run(hook, DAG, first, "featurize", None) as run:
        parent = run.parent_run_id
        assert mlflow_client.get_run(parent).info.status == "RUNNING"
    assert mlflow_client.get_run(parent).info.status == "FINISHED"

    second = make_context(DAG, "second", run_id=first["ti"].run_id)
    with step_run(hook, DAG, second, "train", None) as run:
        assert run.parent_run_id == parent
        assert mlflow_client.get_run(parent).info.status == "RUNNING", "a step is running: the parent is open"
        run.log_params({"C": 1.0})
        run.log_metrics({"accuracy": 0.9})
        assert mlflow_client.get_run(run.run_id).data.metrics == {}, "sent when the step closes"
    assert mlflow_client.get_run(parent).info.status == "FINISHED"
    data = mlflow_client.get_run(run.run_id).data
    assert data.params["C"] == "1.0" and data.metrics["accuracy"] == 0.9


def test_a_param_changed_within_a_step_is_refused_when_logged(mlflow_client: Any) -> None:
    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    with pytest.raises(ValueError, match="param 'C' was already logged as '1.0'"):
        with step_run(hook, DAG, make_context(DAG, "changes"), "train", None) as run:
            run.log_params({"C": 1.0})
            run.log_params({"C": 1.0})  # the same value again is fine
            run.log_params({"C": 2.0})
    [failed] = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name(DAG).experiment_id],
        "tags.`airflow.task_id` = 'changes'",
    )
    assert failed.info.status == "FAILED" and failed.data.params["C"] == "1.0"


def _manifest_file(mlflow_client: Any, parent: str) -> Path:
    """Where the local store keeps the parent's ``dag_run.json`` (this suite's artifact root is a directory)."""
    from urllib.parse import urlparse

    root = urlparse(mlflow_client.get_run(parent).info.artifact_uri).path
    return Path(root) / MANIFEST_DIR / MANIFEST_DAG_RUN


def test_the_dag_run_manifest_is_written_once_and_again_by_a_step_that_finds_no_tag(mlflow_client: Any) -> None:
    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    first = make_context(DAG, "m_first")
    dag_run_id = first["ti"].run_id
    with step_run(hook, DAG, first, "featurize", None) as run:
        parent = run.parent_run_id
    manifest = _manifest_file(mlflow_client, parent)
    assert json.loads(manifest.read_text())["run_id"] == dag_run_id
    assert mlflow_client.get_run(parent).data.tags[TAG_MANIFEST] == f"{MANIFEST_DIR}/{MANIFEST_DAG_RUN}"

    manifest.unlink()  # the content would be the same: removed, it shows whether a later step writes it
    with step_run(hook, DAG, make_context(DAG, "m_second", run_id=dag_run_id), "train", None):
        pass
    assert not manifest.exists(), "the tag says the manifest is written: a later step does not write it again"

    mlflow_client.delete_tag(parent, TAG_MANIFEST)  # as a step that died between the file and the tag leaves it
    with step_run(hook, DAG, make_context(DAG, "m_third", run_id=dag_run_id), "evaluate", None):
        pass
    assert json.loads(manifest.read_text())["dag_id"] == DAG
    assert TAG_MANIFEST in mlflow_client.get_run(parent).data.tags


class _ListsOneStepStillRunning(MlflowHook):
    """Two steps ending together: this one's first listing was taken before the other ended. The timing cannot
    be caused reliably, so the first listing is made stale here (the only thing not real in this test)."""

    stale = True

    def child_runs(self, *args: Any, **kwargs: Any) -> Any:
        runs = super().child_runs(*args, **kwargs)
        if self.stale:
            self.stale = False
            runs[0].info._status = "RUNNING"
        return runs


def test_a_step_that_listed_too_early_writes_running_lists_again_and_leaves_it_finished(mlflow_client: Any) -> None:
    from airflow_ml_provider.records.step_run import _reconcile_parent

    hook = MlflowHook(tracking_uri=mlflow_client.tracking_uri)
    first = make_context(DAG, "r_first")
    with step_run(hook, DAG, first, "evaluate", None) as run:
        parent, experiment = run.parent_run_id, str(run.experiment_id)
    with step_run(hook, DAG, make_context(DAG, "r_second", run_id=first["ti"].run_id), "simulate", None):
        pass
    assert mlflow_client.get_run(parent).info.status == "FINISHED"  # the other step's write

    late = _ListsOneStepStillRunning(tracking_uri=mlflow_client.tracking_uri)
    assert _reconcile_parent(late, parent, experiment) == "FINISHED"
    assert not late.stale, "the stale listing was used"
    assert mlflow_client.get_run(parent).info.status == "FINISHED"
