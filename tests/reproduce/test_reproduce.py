"""`airflow-ml reproduce` on the example: real dag.test() runs, real MLflow store, real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.cli.main import main
from airflow_ml_provider.reproduce.runner import RawDataChanged, ReproductionRequest, reproduce
from tests.conftest import STATE, run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"


@pytest.fixture(scope="module")
def original(airflow_db: Path, raw_data: Path, mlflow_client: Any, tmp_path_factory: Any) -> dict[str, Any]:
    """A champion trained on a private copy of the raw data (so other tests' changes cannot touch it)."""
    raw = tmp_path_factory.mktemp("reproduce") / "raw.parquet"
    shutil.copy(raw_data, raw)
    run = run_dag(DAG_ID, {"raw_uri": str(raw)})
    version = max(int(v.version) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == str(version)
    return {"raw": raw, "version": str(version), "run_id": run.run_id}


def champion(client: Any) -> str:
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


def test_champion_reproduces_bit_identical_features_and_equal_metrics(
    original: dict[str, Any], mlflow_client: Any, tmp_path: Path, capsys: Any
) -> None:
    code = main(["reproduce", f"models:/{MODEL}@champion", "--report-dir", str(tmp_path)])

    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "reproduction.json").read_text())
    assert (tmp_path / "reproduction.md").read_text().startswith(f"# Reproduction of models:/{MODEL}/")
    assert report["reproduced"] is True
    steps = {s["task_id"]: s for s in report["steps"]}
    assert steps["featurize"]["outputs"][0]["outcome"] == "identical"
    assert steps["featurize"]["outputs"][0]["original"] == steps["featurize"]["outputs"][0]["reproduced"]
    metrics = steps["evaluate"]["metrics"]
    assert {m["name"] for m in metrics} >= {"accuracy", "roc_auc", "f1"}
    assert all(abs(m["reproduced"] - m["original"]) <= 1e-9 for m in metrics)
    assert report["raw_inputs"][0]["recorded"] == report["raw_inputs"][0]["current"]

    new_version = mlflow_client.get_model_version(MODEL, report["reproduced_version"])
    assert new_version.tags["airflow_ml.reproduction_of"] == f"models:/{MODEL}/{original['version']}"
    assert champion(mlflow_client) == original["version"], "a reproduction is never promoted"


def test_changing_a_hyperparameter_reports_the_change_and_its_effect(
    original: dict[str, Any], mlflow_client: Any
) -> None:
    report = reproduce(
        mlflow_client,
        ReproductionRequest(target=f"models:/{MODEL}/{original['version']}", overrides={"train": {"C": 0.0005}}),
    )

    train = next(s for s in report.steps if s.task_id == "train")
    assert train.changed_params == {"C": [1.0, 0.0005]}
    evaluate = next(s for s in report.steps if s.task_id == "evaluate")
    accuracy = next(m for m in evaluate.metrics if m["name"] == "accuracy")
    assert accuracy["delta"] is not None and accuracy["delta"] < 0, accuracy  # heavy regularisation costs accuracy
    assert report.reproduced is False
    assert "train.C=0.0005" in report.to_markdown()
    assert champion(mlflow_client) == original["version"]


def test_from_step_train_reuses_the_recorded_features(original: dict[str, Any], mlflow_client: Any) -> None:
    from airflow_ml_provider.reproduce.original import load_recorded_run
    from airflow_ml_provider.reproduce.runner import _new_parent_run

    report = reproduce(
        mlflow_client, ReproductionRequest(target=f"models:/{MODEL}/{original['version']}", from_step="train")
    )

    assert report.reused_steps == ["featurize"]
    assert report.reproduced is True
    experiment = mlflow_client.get_experiment_by_name(DAG_ID).experiment_id
    rerun = load_recorded_run(mlflow_client, _new_parent_run(mlflow_client, experiment, DAG_ID, report.reproduced_run))
    assert "featurize" not in rerun.steps, "featurize must not run again"
    assert {"train", "evaluate"} <= set(rerun.steps)


def test_changed_raw_data_stops_before_running_anything(original: dict[str, Any], mlflow_client: Any) -> None:
    import pandas as pd

    frame = pd.read_parquet(original["raw"])
    frame.loc[0, "mean radius"] = frame.loc[0, "mean radius"] + 0.001
    frame.to_parquet(original["raw"])
    runs_before = len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name(DAG_ID).experiment_id]))

    with pytest.raises(RawDataChanged) as error:
        reproduce(mlflow_client, ReproductionRequest(target=f"models:/{MODEL}/{original['version']}"))

    message = str(error.value)
    assert str(original["raw"]) in message
    assert message.count("blake3:") == 2, "both fingerprints are named"
    runs_after = len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name(DAG_ID).experiment_id]))
    assert runs_after == runs_before, "nothing ran"
    assert main(["reproduce", f"models:/{MODEL}/{original['version']}", "--report-dir", str(STATE / "r")]) == 2
