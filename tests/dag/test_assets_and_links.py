"""Assets and operator extra links through real DAG runs: the example retraining DAG run with dag.test()
(real Airflow metadata DB, real MLflow store), the champion asset event it leaves in the metadata DB,
the scoring DAG that event queues, and the link XComs the worker pushed for the UI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import champion, make_context, run_dag

RETRAIN, SCORE = "breast_cancer_retrain", "breast_cancer_score"
MODEL = "breast_cancer_classifier"
SECRET = "ui-pa55word"
UI_WITH_CREDENTIALS = f"https://bob:{SECRET}@mlflow.example.com/"
UI = "https://mlflow.example.com"
pytestmark = pytest.mark.dag


# --- reading the metadata DB ---------------------------------------------------------------------------


def set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: paused})


def sync_example_dags() -> None:
    """Write the DAGs folder to the metadata DB, as the DAG processor does (dag.test() does it too)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    from tests.support import DAGS

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


def asset_events(uri: str, run_id: str) -> list[dict[str, Any]]:
    """The events on the asset ``uri`` emitted by the DAG run ``run_id``."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)
            .all()
        )
        return [{"id": e.id, "task_id": e.source_task_id, "extra": dict(e.extra or {})} for e in rows]


def link_xcoms(dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """``{task_id: {xcom key: value}}`` of the ``_link_*`` XComs of one DAG run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
        for row in rows:
            if row.key.startswith("_link_"):
                out.setdefault(row.task_id, {})[row.key] = XComModel.deserialize_value(row)
    return out


def returned(dag_id: str, run_id: str, task_id: str) -> Any:
    """What a task returned (its ``return_value`` XCom)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        [row] = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key="return_value")
        return XComModel.deserialize_value(row)


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id)}


def step_runs(client: Any, dag_run_id: str) -> dict[str, Any]:
    """The MLflow step run of each task of a DAG run, by task id."""
    experiment = client.get_experiment_by_name(RETRAIN).experiment_id
    runs = client.search_runs(
        [experiment], filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow_ml.kind` = 'step'"
    )
    return {r.data.tags["airflow.task_id"]: r for r in runs}


def latest_version(client: Any) -> str:
    return str(max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")))


@pytest.fixture(scope="module")
def promoted(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> Iterator[dict[str, Any]]:
    """One retraining run that promotes, with the scoring DAG unpaused (so the event queues it) and an MLflow
    UI configured with credentials in it (which no link may carry)."""
    sync_example_dags()
    set_paused(SCORE, False)
    registered = mlflow_client.search_registered_models(filter_string=f"name = '{MODEL}'")
    before = champion(mlflow_client, MODEL) if registered else None  # None: this run makes the first one
    saved = os.environ.get("AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL")
    os.environ["AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL"] = UI_WITH_CREDENTIALS
    try:
        run = run_dag(RETRAIN, {"raw_uri": str(raw_data)})
    finally:
        if saved is None:
            os.environ.pop("AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL", None)
        else:
            os.environ["AIRFLOW__ML_PROVIDER__MLFLOW_UI_URL"] = saved
    yield {"run": run, "previous": before, "version": latest_version(mlflow_client)}
    set_paused(SCORE, True)


def test_promotion_emits_a_champion_event_with_the_new_and_previous_versions(
    promoted: dict[str, Any], mlflow_client: Any
) -> None:
    from airflow_ml_provider.assets import champion_asset

    run, version = promoted["run"], promoted["version"]
    assert task_states(RETRAIN, run.run_id)["promote"] == "success"
    assert champion(mlflow_client, MODEL) == version != promoted["previous"]

    [event] = asset_events(champion_asset(MODEL).uri, run.run_id)

    assert event["task_id"] == "promote"
    assert event["extra"] == {
        "model_name": MODEL,
        "alias": "champion",
        "version": version,
        "previous": promoted["previous"],
    }


def test_train_and_featurize_emit_their_assets(promoted: dict[str, Any], mlflow_client: Any) -> None:
    from airflow_ml_provider.assets import features_asset, model_asset

    run, version = promoted["run"], promoted["version"]
    [model_event] = asset_events(model_asset(MODEL).uri, run.run_id)
    fingerprint = mlflow_client.get_model_version(MODEL, version).tags["airflow_ml.model_fingerprint"]
    assert model_event["task_id"] == "train"
    assert model_event["extra"] == {
        "model_name": MODEL,
        "version": version,
        "fingerprint": fingerprint,
        "model_uri": f"models:/{MODEL}/{version}",
    }

    [features_event] = asset_events(features_asset(RETRAIN, "featurize").uri, run.run_id)
    features = returned(RETRAIN, run.run_id, "featurize")
    assert features_event["task_id"] == "featurize"
    assert features_event["extra"] == {k: features[k] for k in ("uri", "fingerprint", "rows")}
    assert features["rows"] == 569


def test_the_champion_event_queues_and_triggers_the_scoring_dag(promoted: dict[str, Any], mlflow_client: Any) -> None:
    """The asset's queue row for breast_cancer_score, then the scheduler's own asset-triggered run creation,
    then the scoring DAG scoring with the new champion."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    from airflow_ml_provider.assets import champion_asset

    [event] = asset_events(champion_asset(MODEL).uri, promoted["run"].run_id)
    with create_session() as session:
        asset_id = session.query(AssetModel.id).filter(AssetModel.uri == champion_asset(MODEL).uri).scalar()
        queued = session.query(AssetDagRunQueue).filter_by(target_dag_id=SCORE, asset_id=asset_id).all()
        assert len(queued) == 1, "the champion event queues one run of the scoring DAG"

    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)
    with create_session() as session:
        [triggered] = session.query(DagRun).filter_by(dag_id=SCORE, run_type="asset_triggered").all()
        assert [e.id for e in triggered.consumed_asset_events] == [event["id"]]
        assert session.query(AssetDagRunQueue).filter_by(target_dag_id=SCORE).count() == 0, "the queue is consumed"

    scored = run_dag(SCORE, {})  # dag.test() runs a manual run of the same DAG: no executor here

    assert task_states(SCORE, scored.run_id) == {"featurize": "success", "predict": "success"}
    predict_run = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name(SCORE).experiment_id],
        filter_string=f"tags.`airflow.run_id` = '{scored.run_id}' and tags.`airflow.task_id` = 'predict'",
    )[0]
    assert predict_run.data.tags["airflow_ml.model_version"] == promoted["version"]


def test_link_xcoms_open_the_step_runs_and_the_model_version_without_credentials(
    promoted: dict[str, Any], mlflow_client: Any
) -> None:
    run, version = promoted["run"], promoted["version"]
    xcoms = link_xcoms(RETRAIN, run.run_id)
    runs = step_runs(mlflow_client, run.run_id)
    experiment = mlflow_client.get_experiment_by_name(RETRAIN).experiment_id

    assert set(xcoms) == {"featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"}
    for task_id, links in xcoms.items():
        expected_run = f"{UI}/#/experiments/{experiment}/runs/{runs[task_id].info.run_id}"
        assert links["_link_MLflowRunLink"] == expected_run, task_id
    model_link = f"{UI}/#/models/{MODEL}/versions/{version}"
    for task_id in ("train", "gate", "promote"):
        assert xcoms[task_id]["_link_ModelVersionLink"] == model_link, task_id
    for task_id in ("featurize", "evaluate", "simulate", "predict"):
        assert "_link_ModelVersionLink" not in xcoms[task_id], task_id
    everything = repr(xcoms)
    assert SECRET not in everything and "bob" not in everything


def test_a_failed_gate_emits_no_champion_event_and_its_links_fall_back(
    promoted: dict[str, Any], mlflow_client: Any
) -> None:
    """Without an MLflow UI (this store is sqlite): no run link, the model link opens the provider's page."""
    from airflow_ml_provider.assets import champion_asset, model_asset

    champion_before = champion(mlflow_client, MODEL)

    run = run_dag(RETRAIN, {"raw_uri": os.environ["BREAST_CANCER_RAW_URI"], "min_accuracy": 0.999})

    states = task_states(RETRAIN, run.run_id)
    assert states["gate"] == "failed" and states["promote"] == "upstream_failed"
    assert champion(mlflow_client, MODEL) == champion_before
    assert asset_events(champion_asset(MODEL).uri, run.run_id) == []
    blocked = latest_version(mlflow_client)
    assert [e["extra"]["version"] for e in asset_events(model_asset(MODEL).uri, run.run_id)] == [blocked]

    xcoms = link_xcoms(RETRAIN, run.run_id)
    assert "promote" not in xcoms, "a task that never ran has no links"
    for task_id in ("train", "gate"):
        assert xcoms[task_id] == {
            "_link_MLflowRunLink": "",
            "_link_ModelVersionLink": f"/ml/models/{MODEL}/versions/{blocked}",
        }, task_id


def test_a_no_op_promotion_emits_no_event(promoted: dict[str, Any], mlflow_client: Any) -> None:
    """The champion promoted again: the alias does not move, the task succeeds, no event is added."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_ml_provider.assets import PROMOTIONS_ALIAS
    from airflow_ml_provider.operators.promote import PromoteModelOperator

    version = champion(mlflow_client, MODEL)
    events = OutletEventAccessors()
    context = {**make_context(RETRAIN, "promote"), "outlet_events": events}
    operator = PromoteModelOperator(task_id="promote", model=f"models:/{MODEL}/{version}")

    result = operator.execute(context)  # type: ignore[arg-type]

    assert result["outcome"] == "unchanged"
    assert events[PROMOTIONS_ALIAS].asset_alias_events == []
