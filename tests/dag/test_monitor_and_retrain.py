"""Drift in production through real DAG runs: the example monitor DAG (dag.test(), real Airflow metadata DB,
real MLflow store, real OpenLineage events) on a batch resampled from the training data and on one with a
0.5-standard-deviation shift of one feature; the drift asset event it leaves and the retraining run the
scheduler's own code creates from it; and the failure paths (not enough data, a changed reference)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dag.test_assets_and_links import asset_events, returned, set_paused, sync_example_dags, task_states
from tests.example import example_module
from tests.lineage import spec
from tests.support import STATE, champion, read_events, run_dag

MONITOR, RETRAIN = "breast_cancer_monitor", "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"
SHIFTED = "mean radius"
pytestmark = pytest.mark.dag


def write_batch(name: str, rows: int = 500, shift: tuple[str, float] | None = None, seed: int = 7) -> Path:
    data = example_module("data")
    return data.write_batch(STATE / "data" / "breast_cancer.parquet", STATE / "data" / name, rows, shift, seed)


@pytest.fixture(scope="module")
def monitored(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> Iterator[dict[str, Any]]:
    """A champion (trained here unless an earlier module promoted one), then the monitor on a clean batch
    and on a shifted one, with the retraining DAG unpaused so that the drift event queues it."""
    sync_example_dags()
    registered = mlflow_client.search_registered_models(filter_string=f"name = '{MODEL}'")
    if not registered or champion(mlflow_client, MODEL) is None:
        run_dag(RETRAIN, {"raw_uri": str(raw_data)})
    set_paused(RETRAIN, False)
    clean = run_dag(MONITOR, {"batch_uri": str(write_batch("clean.parquet"))})
    shifted = run_dag(MONITOR, {"batch_uri": str(write_batch("shifted.parquet", shift=(SHIFTED, 0.5)))})
    yield {"clean": clean, "shifted": shifted, "champion": champion(mlflow_client, MODEL)}
    set_paused(RETRAIN, True)


def drift_run(client: Any, dag_run_id: str) -> Any:
    experiment = client.get_experiment_by_name(MONITOR).experiment_id
    [run] = client.search_runs(
        [experiment], filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow.task_id` = 'drift'"
    )
    return run


def test_a_batch_like_the_training_data_shows_no_drift_and_emits_nothing(
    monitored: dict[str, Any], mlflow_client: Any
) -> None:
    from airflow_ml_provider.assets import drift_asset

    run = monitored["clean"]
    assert task_states(MONITOR, run.run_id) == {"featurize": "success", "predict": "success", "drift": "success"}
    report = returned(MONITOR, run.run_id, "drift")
    assert report["status"] == "no_drift" and report["drifted_features"] == []
    assert report["version"] == monitored["champion"]
    assert "target" not in report["features"], "the model's target column is not compared"
    assert {"prediction", "probability"} <= set(report["features"]), "the predictions are compared too"
    assert asset_events(drift_asset(MODEL).uri, run.run_id) == []
    recorded = drift_run(mlflow_client, run.run_id)
    assert recorded.data.tags["airflow_ml.drift.status"] == "no_drift"
    assert recorded.data.metrics["drift.features_drifted"] == 0


def test_a_shifted_feature_is_detected_named_recorded_and_emitted(
    monitored: dict[str, Any], mlflow_client: Any
) -> None:
    from airflow_ml_provider.assets import drift_asset

    run = monitored["shifted"]
    assert task_states(MONITOR, run.run_id)["drift"] == "success", 'on_drift="emit" succeeds'
    report = returned(MONITOR, run.run_id, "drift")
    assert report["status"] == "drift"
    assert "mean_radius" in report["drifted_features"]
    feature = report["features"]["mean_radius"]
    assert feature["method"] == "psi+ks" and feature["statistic"] >= feature["threshold"]
    assert "Holm-adjusted" in feature["reason"]

    [event] = asset_events(drift_asset(MODEL).uri, run.run_id)
    assert event["task_id"] == "drift"
    extra = event["extra"]
    assert extra["model_name"] == MODEL and extra["version"] == monitored["champion"]
    assert set(extra["features"]) == set(report["drifted_features"])
    assert extra["features"]["mean_radius"]["statistic"] == pytest.approx(feature["statistic"])
    features = returned(MONITOR, run.run_id, "featurize")
    assert extra["current"] == {k: features[k] for k in ("uri", "fingerprint", "rows")}

    recorded = drift_run(mlflow_client, run.run_id)
    assert recorded.data.tags["airflow_ml.drift.status"] == "drift"
    assert recorded.data.metrics["drift.mean_radius"] == pytest.approx(feature["statistic"])
    path = mlflow_client.download_artifacts(recorded.info.run_id, "airflow_ml/drift_report.json", str(STATE))
    assert json.loads(Path(path).read_text())["drifted_features"] == report["drifted_features"]


def test_the_drift_event_queues_a_retraining_run(monitored: dict[str, Any]) -> None:
    """make demo's step: the scheduler's own asset-triggered run creation (scripts/create_asset_triggered_runs.py,
    run as the demo runs it) turns the drift event into a queued retraining run that consumed it."""
    import subprocess
    import sys

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from airflow_ml_provider.assets import drift_asset
    from tests.support import ROOT

    [event] = asset_events(drift_asset(MODEL).uri, monitored["shifted"].run_id)
    script = ROOT / "scripts" / "create_asset_triggered_runs.py"
    done = subprocess.run([sys.executable, str(script), RETRAIN], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"is queued, triggered by ml-drift:{MODEL} (from {MONITOR}.drift)" in done.stdout
    with create_session() as session:
        [triggered] = session.query(DagRun).filter_by(dag_id=RETRAIN, run_type="asset_triggered").all()
        assert [e.id for e in triggered.consumed_asset_events] == [event["id"]]
        assert str(triggered.state) == "queued"


@pytest.mark.spec
def test_the_drift_facet_is_on_the_batch_and_validates(monitored: dict[str, Any]) -> None:
    completes = [e for e in read_events() if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{MONITOR}.drift"]
    drifted = [
        e
        for e in completes
        if any(i.get("inputFacets", {}).get("mlDrift", {}).get("status") == "drift" for i in e["inputs"])
    ]
    assert len(completes) >= 2 and drifted, "both monitor runs completed; the shifted one carries a drift facet"
    complete = drifted[-1]
    validator = spec.Validator()
    assert validator.validate_event(complete) == []
    [batch] = [i for i in complete["inputs"] if "mlDrift" in (i.get("inputFacets") or {})]
    facet = batch["inputFacets"]["mlDrift"]
    assert facet["status"] == "drift" and "mean_radius" in facet["driftedFeatures"]
    assert facet["_schemaURL"].endswith("MLDriftInputDatasetFacet.json#/$defs/MLDriftInputDatasetFacet")


# --- failure paths, through a DriftOperator of the test's own -----------------------------------------------


CHECKS = Path(__file__).parent / "drift_dags"


def run_drift(client: Any, **conf: Any) -> tuple[str, str | None]:
    """The tests' drift_checks DAG (one DriftOperator on the champion) run with dag.test(): the task's state
    and the error its step record holds."""
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    from tests.support import read_record

    bag = BundleDagBag(dag_folder=str(CHECKS), bundle_path=CHECKS, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)  # as the DAG processor would
    run = run_dag("drift_checks", conf, folder=CHECKS)
    experiment = client.get_experiment_by_name("drift_checks").experiment_id
    [step] = client.search_runs(
        [experiment], filter_string=f"tags.`airflow.run_id` = '{run.run_id}' and tags.`airflow_ml.kind` = 'step'"
    )
    return task_states("drift_checks", run.run_id)["drift"], read_record(client, step.info.run_id).error


def test_too_few_rows_is_not_enough_data_never_no_drift(
    monitored: dict[str, Any], mlflow_client: Any, tmp_path: Path
) -> None:
    transform = example_module("pipeline").transform
    import pandas as pd

    small = tmp_path / "small.parquet"
    transform(pd.read_parquet(write_batch("small-raw.parquet", rows=40))).to_parquet(small)
    alerts = tmp_path / "alerts.jsonl"
    state, error = run_drift(mlflow_client, current=str(small), alerts=str(alerts))
    assert state == "failed"
    assert "not enough data: 40 rows in the batch" in error and "at least 100" in error
    assert not alerts.exists(), "not enough data is no drift alert either"


def test_drift_calls_the_notifiers_and_fails_by_default(
    monitored: dict[str, Any], mlflow_client: Any, tmp_path: Path
) -> None:
    transform = example_module("pipeline").transform
    import pandas as pd

    batch = tmp_path / "shifted.parquet"
    transform(pd.read_parquet(write_batch("shifted-2.parquet", shift=(SHIFTED, 1.0)))).to_parquet(batch)
    alerts = tmp_path / "alerts.jsonl"
    state, error = run_drift(mlflow_client, current=str(batch), alerts=str(alerts))
    assert state == "failed", 'on_drift="fail" (the default) fails the task'
    assert "drifted from the training data" in error and "mean_radius" in error
    [alert] = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert "mean_radius" in alert["drifted_features"] and alert["task_id"] == "drift"


def test_a_reference_changed_since_training_is_refused(
    monitored: dict[str, Any], mlflow_client: Any, tmp_path: Path
) -> None:
    """The champion's training rows are rewritten in place; the drift step must refuse, not compare."""
    import shutil

    from tests.support import read_record

    version = mlflow_client.get_model_version(MODEL, monitored["champion"])
    record = read_record(mlflow_client, version.tags["airflow_ml.training_run_id"])
    [train_rows] = [entry for entry in record.outputs if entry["role"] == "train"]
    path = Path(train_rows["uri"].removeprefix("file://"))
    saved = tmp_path / "saved.parquet"
    shutil.copy2(path, saved)
    clean = write_batch("clean-2.parquet")
    try:
        path.chmod(0o644)
        import pandas as pd

        frame = pd.read_parquet(path)
        frame.iloc[0, 0] += 1.0
        frame.to_parquet(path)
        state, error = run_drift(mlflow_client, current=str(clean))
    finally:
        shutil.copy2(saved, path)
    assert state == "failed"
    assert "changed since it was recorded" in error and train_rows["fingerprint"] in error
    assert "retrain the model, or pass reference=" in error and "Re-run the upstream task" not in error
