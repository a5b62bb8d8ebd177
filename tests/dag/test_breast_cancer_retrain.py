"""The example retraining DAG, end to end with dag.test(): real Airflow DB, MLflow store, Great
Expectations and OpenLineage file transport. Runs in order: the first run creates the champion
that the blocked runs must leave untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import DAGS, RAW_URI, STATE, champion, read_events, run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"
pytestmark = pytest.mark.dag


def task_states(run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def versions(client: Any) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'"))


def task_events(run_id: str, event_type: str) -> dict[str, dict[str, Any]]:
    """The events of one DAG run's tasks, by task id (the parent facet names the DAG run)."""
    out = {}
    for event in read_events():
        parent = event.get("run", {}).get("facets", {}).get("parent", {})
        if event["eventType"] != event_type or not event["job"]["name"].startswith(f"{DAG_ID}."):
            continue
        airflow_facet = event["run"]["facets"].get("airflow", {})
        if airflow_facet.get("dagRun", {}).get("run_id") == run_id or parent.get("run", {}).get("runId"):
            task_id = event["job"]["name"].split(".", 1)[1]
            if airflow_facet.get("dagRun", {}).get("run_id", run_id) == run_id:
                out[task_id] = event
    return out


@pytest.fixture(scope="module")
def good_run(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> Any:
    return run_dag(DAG_ID, {"raw_uri": str(raw_data)})


def test_good_data_promotes_a_version(good_run: Any, mlflow_client: Any) -> None:
    states = task_states(good_run.run_id)
    assert states == dict.fromkeys(
        ["featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"], "success"
    )
    latest = versions(mlflow_client)[-1]
    assert champion(mlflow_client, MODEL) == str(latest)
    version = mlflow_client.get_model_version(MODEL, str(latest))
    assert version.tags["airflow.dag_id"] == DAG_ID
    assert version.tags["airflow.run_id"] == good_run.run_id
    assert version.tags["airflow.task_id"] == "train"
    assert version.tags["airflow_ml.gate.status"] == "passed"
    assert parent_run(mlflow_client, good_run.run_id).info.status == "FINISHED"


def test_complete_events_name_real_inputs_and_outputs(good_run: Any, mlflow_client: Any) -> None:
    events = task_events(good_run.run_id, "COMPLETE")
    assert set(events) >= {"featurize", "train", "evaluate", "simulate", "gate", "promote"}
    names = {
        t: ([d["name"] for d in e["inputs"]], [d["name"] for d in e["outputs"]]) for t, e in events.items()
    }

    featurize_in, featurize_out = names["featurize"]
    assert featurize_in == [str(RAW_URI)]
    assert len(featurize_out) == 1 and Path(featurize_out[0]).is_file()
    assert featurize_out[0].startswith(str(STATE / "artifacts" / "features"))

    train_in, train_out = names["train"]
    assert train_in == featurize_out
    model_name = f"models:/{MODEL}/{versions(mlflow_client)[-1]}"
    assert train_out[0] == model_name
    model_facets = events["train"]["outputs"][0]["facets"]
    assert model_facets["datasetType"]["datasetType"] == "MODEL"
    fingerprint = mlflow_client.get_model_version(MODEL, model_name.rsplit("/", 1)[1]).tags[
        "airflow_ml.model_fingerprint"
    ]
    assert model_facets["version"]["datasetVersion"] == fingerprint
    assert all(Path(p).is_file() for p in train_out[1:])  # train and holdout splits

    holdout = train_out[2]
    assert names["evaluate"][0] == [model_name, holdout]
    for task in ("simulate", "gate", "promote"):
        assert names[task][0] == [model_name], task

    raw_facets = events["featurize"]["inputs"][0]["facets"]
    assert raw_facets["version"]["datasetVersion"].startswith("blake3:")
    assert {f["name"] for f in raw_facets["schema"]["fields"]} >= {"mean radius", "target"}
    stats = events["featurize"]["outputs"][0]["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 569


def test_raw_data_violating_the_suite_fails_at_featurize(
    good_run: Any, mlflow_client: Any, tmp_path: Path
) -> None:
    import pandas as pd

    bad = pd.read_parquet(RAW_URI)
    bad.loc[[3, 10, 42], "mean radius"] = float("nan")
    bad_uri = tmp_path / "raw_with_nans.parquet"
    bad.to_parquet(bad_uri)
    before = versions(mlflow_client)
    features_before = set((STATE / "artifacts" / "features").iterdir())

    run = run_dag(DAG_ID, {"raw_uri": str(bad_uri)})

    states = task_states(run.run_id)
    assert states["featurize"] == "failed"
    assert states["train"] == "upstream_failed" and states["promote"] == "upstream_failed"
    assert versions(mlflow_client) == before, "no model version may be registered"
    assert set((STATE / "artifacts" / "features").iterdir()) == features_before, "no features written"
    record = step_record(mlflow_client, run.run_id, "featurize")
    assert record["status"] == "failed"
    assert "expect_column_values_to_not_be_null" in record["error"]
    assert "'mean radius'" in record["error"]
    assert "3 of 569" in record["error"]
    parent = mlflow_client.get_run(record["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
    assert mlflow_client.get_run(parent).info.status == "FAILED", "the DAG-run parent shows the failure"
    fail = task_events(run.run_id, "FAIL")["featurize"]
    assert fail["inputs"][0]["name"] == str(bad_uri)


def test_failing_scenario_blocks_the_gate(good_run: Any, mlflow_client: Any, tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((DAGS / "breast_cancer" / "scenarios.yaml").read_text())
    doc["scenarios"][0]["expect"] = {"equals": 0}  # typical benign case "must" be malignant: impossible
    scenarios = tmp_path / "scenarios.yaml"
    scenarios.write_text(yaml.safe_dump(doc))
    champion_before = champion(mlflow_client, MODEL)

    run = run_dag(DAG_ID, {"raw_uri": str(RAW_URI), "scenarios": str(scenarios)})

    states = task_states(run.run_id)
    assert states["simulate"] == "success" and states["evaluate"] == "success"
    assert states["gate"] == "failed" and states["promote"] == "upstream_failed"
    assert champion(mlflow_client, MODEL) == champion_before
    blocked = mlflow_client.get_model_version(MODEL, str(versions(mlflow_client)[-1]))
    assert blocked.tags["airflow_ml.gate.status"] == "failed"
    verdict = gate_verdict(mlflow_client, blocked)
    failed = {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}
    assert set(failed) == {"scenario:typical_benign"}
    assert "expected 0" in failed["scenario:typical_benign"]


def test_metric_below_threshold_blocks_the_gate(good_run: Any, mlflow_client: Any) -> None:
    champion_before = champion(mlflow_client, MODEL)

    run = run_dag(DAG_ID, {"raw_uri": str(RAW_URI), "min_accuracy": 0.999})

    states = task_states(run.run_id)
    assert states["gate"] == "failed" and states["promote"] == "upstream_failed"
    assert champion(mlflow_client, MODEL) == champion_before
    blocked = mlflow_client.get_model_version(MODEL, str(versions(mlflow_client)[-1]))
    verdict = gate_verdict(mlflow_client, blocked)
    failed = {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}
    assert set(failed) == {"metric:accuracy:threshold"}
    assert "is below the minimum 0.999 (higher is better)" in failed["metric:accuracy:threshold"]
    gate_run = mlflow_client.get_run(blocked.tags["airflow_ml.gate.run_id"])
    assert gate_run.info.status == "FAILED", "a failed verdict is a failed gate step"
    assert parent_run(mlflow_client, run.run_id).info.status == "FAILED", "the DAG-run parent shows the failed gate"


def test_status_command_explains_why_the_latest_version_was_not_promoted(
    good_run: Any, mlflow_client: Any, capsys: Any
) -> None:
    from airflow_ml_provider.cli.main import main

    run_dag(DAG_ID, {"raw_uri": str(RAW_URI), "min_accuracy": 0.999})
    capsys.readouterr()

    assert main(["status", MODEL]) == 0

    out = capsys.readouterr().out
    latest = versions(mlflow_client)[-1]
    assert f"alias 'champion' -> {champion(mlflow_client, MODEL)}" in out
    assert f"Latest version {latest} was not promoted; gate: failed." in out
    assert "FAILED metric:accuracy:threshold: accuracy" in out


def step_record(client: Any, dag_run_id: str, task_id: str) -> dict[str, Any]:
    runs = client.search_runs(
        [client.get_experiment_by_name(DAG_ID).experiment_id],
        filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow.task_id` = '{task_id}'",
    )
    assert len(runs) == 1, f"expected one MLflow run for {task_id} of {dag_run_id}, found {len(runs)}"
    path = client.download_artifacts(runs[0].info.run_id, "airflow_ml/step_record.json", str(STATE))
    return json.loads(Path(path).read_text())


def parent_run(client: Any, dag_run_id: str) -> Any:
    """The DAG run's parent MLflow run."""
    [run] = client.search_runs(
        [client.get_experiment_by_name(DAG_ID).experiment_id],
        filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow_ml.kind` = 'dag_run'",
    )
    return run


def gate_verdict(client: Any, version: Any) -> dict[str, Any]:
    path = client.download_artifacts(
        version.tags["airflow_ml.gate.run_id"], "airflow_ml/verdict.json", str(STATE)
    )
    return json.loads(Path(path).read_text())
