"""`airflow-ml reproduce` on the example: real dag.test() runs, real MLflow store, real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.cli.main import main
from airflow_ml_provider.reproduce.runner import RawDataChanged, ReproductionRequest, reproduce
from tests.support import STATE, champion, run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"


@pytest.fixture
def hook(mlflow_client: Any) -> Any:
    """The provider's door to the same MLflow store the tests' client reads."""
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    return MlflowHook(tracking_uri=mlflow_client.tracking_uri)


@pytest.fixture(scope="module")
def original(airflow_db: Path, raw_data: Path, mlflow_client: Any, tmp_path_factory: Any) -> dict[str, Any]:
    """A champion trained on a private copy of the raw data (so other tests' changes cannot touch it)."""
    raw = tmp_path_factory.mktemp("reproduce") / "raw.parquet"
    shutil.copy(raw_data, raw)
    run = run_dag(DAG_ID, {"raw_uri": str(raw)})
    version = max(int(v.version) for v in mlflow_client.search_model_versions(f"name = '{MODEL}'"))
    assert str(mlflow_client.get_model_version_by_alias(MODEL, "champion").version) == str(version)
    return {"raw": raw, "version": str(version), "run_id": run.run_id}


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
    # The models themselves: both scored on the recorded holdout (114 of the 569 rows).
    train = steps["train"]
    assert train["outcome"] == "identical", train
    assert train["model"]["outcome"] == "identical" and train["model"]["rows"] == 114
    assert train["model"]["rows_different"] == 0 and train["model"]["max_difference"] == 0.0
    assert train["model"]["outputs"] == ["predict", "predict_proba"]
    # skops archives are not byte-stable, so the model file is not compared (and not called identical).
    assert train["model"]["fingerprint"]["outcome"] == "not compared"
    assert "skops is not byte-stable" in train["model"]["fingerprint"]["reason"]
    # The gate ran on the rebuilt version and is listed with its verdict.
    [gate] = report["gates"]
    assert gate["task_id"] == "gate" and gate["original"] == "passed"
    assert gate["reproduced"] == "passed" and gate["model"] == f"models:/{MODEL}/{report['reproduced_version']}"
    assert f"| gate | verdict on models:/{MODEL}/{report['reproduced_version']}: passed" in out

    new_version = mlflow_client.get_model_version(MODEL, report["reproduced_version"])
    assert new_version.tags["airflow_ml.reproduction_of"] == f"models:/{MODEL}/{original['version']}"
    assert champion(mlflow_client, MODEL) == original["version"], "a reproduction is never promoted"


def test_changing_a_hyperparameter_reports_the_change_and_its_effect(
    original: dict[str, Any], mlflow_client: Any, hook: Any
) -> None:
    report = reproduce(
        hook,
        ReproductionRequest(target=f"models:/{MODEL}/{original['version']}", overrides={"train": {"C": 0.0005}}),
    )

    train = next(s for s in report.steps if s.task_id == "train")
    assert train.changed_params == {"C": [1.0, 0.0005]}
    assert train.outcome == "changed by --set", "a step whose params were overridden is never identical"
    assert train.model is not None and train.model["outcome"] == "different"
    assert 0 < train.model["rows_different"] <= train.model["rows"] == 114
    assert train.model["max_difference"] > 0.01
    assert "| train | identical |" not in report.to_markdown()
    train_row = next(line for line in report.to_markdown().splitlines() if line.startswith("| train |"))
    assert train_row.startswith("| train | changed by --set |") and "param C: 1.0 -> 0.0005" in train_row
    assert "predictions on the holdout (114 rows): different" in train_row
    [gate] = report.gates
    assert gate.model == f"models:/{MODEL}/{report.reproduced_version}" and gate.reproduced in ("passed", "failed")
    evaluate = next(s for s in report.steps if s.task_id == "evaluate")
    accuracy = next(m for m in evaluate.metrics if m["name"] == "accuracy")
    assert accuracy["delta"] is not None and accuracy["delta"] < 0, accuracy  # heavy regularisation costs accuracy
    assert report.reproduced is False
    assert "train.C=0.0005" in report.to_markdown()
    assert champion(mlflow_client, MODEL) == original["version"]


def test_from_step_train_reuses_the_recorded_features(
    original: dict[str, Any], mlflow_client: Any, hook: Any
) -> None:
    from airflow_ml_provider.reproduce.original import load_recorded_run
    from airflow_ml_provider.reproduce.runner import _new_parent_run

    report = reproduce(
        hook, ReproductionRequest(target=f"models:/{MODEL}/{original['version']}", from_step="train")
    )

    assert report.reused_steps == ["featurize"]
    assert report.reproduced is True
    experiment = mlflow_client.get_experiment_by_name(DAG_ID).experiment_id
    rerun = load_recorded_run(hook, _new_parent_run(hook, experiment, DAG_ID, report.reproduced_run))
    assert "featurize" not in rerun.steps, "featurize must not run again"
    assert {"train", "evaluate"} <= set(rerun.steps)


def test_changed_raw_data_stops_before_running_anything(
    original: dict[str, Any], mlflow_client: Any, hook: Any
) -> None:
    import pandas as pd

    frame = pd.read_parquet(original["raw"])
    frame.loc[0, "mean radius"] = frame.loc[0, "mean radius"] + 0.001
    frame.to_parquet(original["raw"])
    runs_before = len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name(DAG_ID).experiment_id]))

    with pytest.raises(RawDataChanged) as error:
        reproduce(hook, ReproductionRequest(target=f"models:/{MODEL}/{original['version']}"))

    message = str(error.value)
    assert str(original["raw"]) in message
    assert message.count("blake3:") == 2, "both fingerprints are named"
    runs_after = len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name(DAG_ID).experiment_id]))
    assert runs_after == runs_before, "nothing ran"
    assert main(["reproduce", f"models:/{MODEL}/{original['version']}", "--report-dir", str(STATE / "r")]) == 2
