"""Our run facets as the example DAG really emits them (dag.test(), OpenLineage file transport, MLflow
store), run with an MLflow connection that has a password: every step's COMPLETE event carries the
facets with the values MLflow holds, every event stays under 64 KiB, and the password appears nowhere
(neither in any event nor in any MLflow param, tag or step record). A run on bad raw data shows the
FAIL event of featurize still carrying its lineage, with the failed assertions."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lineage.spec import facet_errors
from tests.support import DAGS, EVENTS, RAW_URI, run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"
SECRET = "Pa55-w0rd-never-in-lineage-7f3a"
MAX_EVENT_BYTES = 64 * 1024
STEPS = ["featurize", "train", "evaluate", "simulate", "gate", "promote"]
COMMON = {"mlflowRun", "mlEnvironment", "mlHardware"}
pytestmark = pytest.mark.dag


def _events_from(offset: int) -> list[tuple[int, dict[str, Any]]]:
    """(size in bytes, event) of every event line the file transport appended after ``offset``."""
    with EVENTS.open("rb") as f:
        f.seek(offset)
        lines = f.read().splitlines()
    return [(len(line), json.loads(line)) for line in lines if line.strip()]


def _by_task(events: list[tuple[int, dict[str, Any]]], event_type: str) -> dict[str, dict[str, Any]]:
    return {
        e["job"]["name"].split(".", 1)[1]: e
        for _, e in events
        if e["eventType"] == event_type and e["job"]["name"].startswith(f"{DAG_ID}.")
    }


class Run:
    def __init__(self, dag_run: Any, offset: int) -> None:
        self.dag_run = dag_run
        self.events = _events_from(offset)
        self.complete = _by_task(self.events, "COMPLETE")
        self.fail = _by_task(self.events, "FAIL")


@pytest.fixture(scope="module")
def mlflow_connection() -> Iterator[str]:
    """``mlflow_default`` as a connection with login and password, pointing at the test store."""
    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_MLFLOW_DEFAULT", "MLFLOW_TRACKING_USERNAME",
                                             "MLFLOW_TRACKING_PASSWORD")}  # fmt: skip
    os.environ["AIRFLOW_CONN_MLFLOW_DEFAULT"] = json.dumps(
        {
            "conn_type": "mlflow",
            "login": "ml-user",
            "password": SECRET,
            "extra": {"tracking_uri": os.environ["MLFLOW_TRACKING_URI"]},
        }
    )
    yield SECRET
    for key, value in saved.items():  # the hook exports the credentials for MLflow: undo that too
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _run(conf: dict[str, Any]) -> Run:
    offset = EVENTS.stat().st_size if EVENTS.exists() else 0
    return Run(run_dag(DAG_ID, conf), offset)


@pytest.fixture(scope="module")
def good(airflow_db: Path, raw_data: Path, mlflow_client: Any, mlflow_connection: str) -> Run:
    return _run({"raw_uri": str(raw_data)})


@pytest.fixture(scope="module")
def bad(good: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:
    import pandas as pd

    frame = pd.read_parquet(RAW_URI)
    frame.loc[[3, 10, 42], "mean radius"] = float("nan")
    path = tmp_path_factory.mktemp("bad") / "raw_with_nans.parquet"
    frame.to_parquet(path)
    return _run({"raw_uri": str(path)})


def mlflow_runs(client: Any, dag_run_id: str) -> dict[str, Any]:
    experiment = client.get_experiment_by_name(DAG_ID)
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`airflow.run_id` = '{dag_run_id}'", max_results=100
    )
    return {r.data.tags.get("airflow.task_id", r.data.tags.get("airflow_ml.kind")): r for r in runs}


def run_facets(event: dict[str, Any]) -> dict[str, Any]:
    return event["run"]["facets"]


# --- the good run --------------------------------------------------------------------------------------


@pytest.mark.spec
def test_every_step_carries_mlflow_environment_and_hardware(good: Run, mlflow_client: Any) -> None:
    from airflow_ml_provider.records.environment import installed_packages_digest

    runs = mlflow_runs(mlflow_client, good.dag_run.run_id)
    digest, count = installed_packages_digest()
    tasks = [t for t in [*STEPS, "predict"] if t in good.complete or t in STEPS]
    for task in tasks:
        event = good.complete[task]
        facets = run_facets(event)
        assert COMMON <= set(facets), (task, sorted(facets))
        link = facets["mlflowRun"]
        run = runs[task]
        assert link["runId"] == run.info.run_id, task
        assert link["experimentId"] == run.info.experiment_id
        assert link["trackingUri"] == os.environ["MLFLOW_TRACKING_URI"]
        # the run manifest that `airflow-ml reproduce` reads is reachable from lineage
        assert link["parentRunId"] == run.data.tags["mlflow.parentRunId"]
        manifest = mlflow_client.list_artifacts(link["parentRunId"], f"{link['manifestPath']}/steps")
        assert f"{link['manifestPath']}/steps/{task}.json" in {a.path for a in manifest}, task
        # and back: the MLflow run names the OpenLineage run of this task's events
        assert run.data.tags.get("openlineage.run_id") == event["run"]["runId"], task
        assert run.data.tags.get("airflow_ml.environment.packages_digest") == digest
        environment = facets["mlEnvironment"]
        assert environment["packagesDigest"] == digest and environment["packagesCount"] == count
        assert {"mlflow", "pandas", "openlineage-python", "apache-airflow"} <= set(environment["packages"])
        assert facets["mlHardware"]["logicalCores"] == os.cpu_count()
        for key, facet in facets.items():
            if key.startswith("ml") or key == "test":
                assert facet_errors(facet) == [], (task, key)


def test_user_code_identity(good: Run, mlflow_client: Any) -> None:
    from tests.example import train, transform

    runs = mlflow_runs(mlflow_client, good.dag_run.run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=DAGS, capture_output=True, text=True, check=False)
    for task, fn in (("featurize", transform), ("train", train)):
        code = run_facets(good.complete[task])["mlCode"]
        # Named by its file in the DAGs folder (the example's helper module), as the step record says.
        assert code["callable"] == f"breast_cancer/pipeline.py:{fn.__name__}"
        assert runs[task].data.tags["airflow_ml.code.callable"] == code["callable"]
        sha = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
        assert code["sourceSha256"] == sha
        assert runs[task].data.tags["airflow_ml.code.sha256"] == sha
        if head.returncode == 0:  # the checkout's commit; CI clones the repository
            assert code["gitCommit"] == head.stdout.strip()
            assert code["gitPath"] == "dags_examples/breast_cancer/pipeline.py"
            assert isinstance(code["gitDirty"], bool)
    for task in ("simulate", "gate", "promote"):  # no user callable
        assert "mlCode" not in run_facets(good.complete[task])


def test_training_facet_names_the_registered_version(good: Run, mlflow_client: Any) -> None:
    training = run_facets(good.complete["train"])["mlTraining"]
    version = mlflow_client.get_model_version(MODEL, training["modelVersion"])
    assert version.tags["airflow.run_id"] == good.dag_run.run_id
    assert training["registeredModelName"] == MODEL
    assert training["mlflowRunId"] == version.run_id
    assert training["modelUri"] == f"models:/{MODEL}/{version.version}"
    assert training["modelFingerprint"] == version.tags["airflow_ml.model_fingerprint"]
    assert training["estimator"] == "sklearn.pipeline.Pipeline"
    assert training["randomSeed"] == 42
    assert training["hyperparameters"] == {"C": 1.0, "max_iter": 1000, "seed": 42}
    assert good.complete["train"]["outputs"][0]["facets"]["version"]["datasetVersion"] == training["modelFingerprint"]


def test_evaluation_scenarios_verdict_and_promotion(good: Run, mlflow_client: Any) -> None:
    import yaml

    version = run_facets(good.complete["train"])["mlTraining"]["modelVersion"]
    runs = mlflow_runs(mlflow_client, good.dag_run.run_id)

    evaluation = run_facets(good.complete["evaluate"])["mlEvaluation"]
    logged = runs["evaluate"].data.metrics
    assert evaluation["modelVersion"] == version and evaluation["mlflowRunId"] == runs["evaluate"].info.run_id
    own = {k: v for k, v in logged.items() if not k.startswith(("champion_", "airflow_ml.resources."))}
    assert evaluation["metrics"] == pytest.approx(own)
    assert {"accuracy", "roc_auc"} <= set(evaluation["metrics"])
    if evaluation.get("championMetrics"):
        champion = {k.removeprefix("champion_"): v for k, v in logged.items() if k.startswith("champion_")}
        assert evaluation["championMetrics"] == pytest.approx(champion)

    names = [s["name"] for s in yaml.safe_load((DAGS / "breast_cancer" / "scenarios.yaml").read_text())["scenarios"]]
    facets = run_facets(good.complete["simulate"])
    assert facets["mlScenarios"]["passed"] is True and facets["mlScenarios"]["modelVersion"] == version
    assert [(s["name"], s["passed"]) for s in facets["mlScenarios"]["scenarios"]] == [(n, True) for n in names]
    assert [(t["name"], t["status"]) for t in facets["test"]["tests"]] == [(n, "pass") for n in names]

    verdict = run_facets(good.complete["gate"])["mlGateVerdict"]
    assert verdict["status"] == "passed" and verdict["modelVersion"] == version
    recorded = mlflow_client.download_artifacts(verdict["mlflowRunId"], "airflow_ml/verdict.json", tempfile.mkdtemp())
    checks = json.loads(Path(recorded).read_text())["checks"]
    assert verdict["checks"] == [{k: c[k] for k in ("name", "passed", "reason")} for c in checks]

    promotion = run_facets(good.complete["promote"])["mlPromotion"]
    assert promotion["alias"] == "champion" and promotion["outcome"] == "promoted"
    assert promotion["modelVersion"] == promotion["aliasVersion"] == version


@pytest.mark.spec
def test_raw_input_carries_the_raw_suite_as_assertions(good: Run) -> None:
    suite = json.loads((DAGS / "breast_cancer" / "raw_suite.json").read_text())
    features_suite = json.loads((DAGS / "breast_cancer" / "features_suite.json").read_text())
    event = good.complete["featurize"]
    facet = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]
    assert facet_errors(facet) == []
    assertions = facet["assertions"]
    assert len(assertions) == len(suite["expectations"]) == 64
    assert all(a["success"] for a in assertions)
    columns = {e["kwargs"].get("column") for e in suite["expectations"]} - {None}
    assert {a["column"] for a in assertions if "column" in a} == columns
    # No output dataset facet exists for assertions in the spec: the features suite is the run's tests.
    assert "dataQualityAssertions" not in event["outputs"][0].get("outputFacets", {})
    tests = run_facets(event)["test"]["tests"]
    assert len(tests) == len(features_suite["expectations"]) and all(t["status"] == "pass" for t in tests)


def test_every_event_is_small(good: Run) -> None:
    sizes = {f"{e['job']['name']} {e['eventType']}": size for size, e in good.events}
    assert len(sizes) >= 2 * len(STEPS)
    largest = max(sizes, key=sizes.__getitem__)
    print(f"\nlargest event: {largest}, {sizes[largest]} bytes; all: {sorted(sizes.values())}")
    assert sizes[largest] < MAX_EVENT_BYTES, largest


def test_the_connection_password_appears_nowhere(good: Run, mlflow_client: Any) -> None:
    assert SECRET not in EVENTS.read_text()
    experiment = mlflow_client.get_experiment_by_name(DAG_ID)
    runs = mlflow_client.search_runs([experiment.experiment_id], max_results=1000)
    assert runs
    for run in runs:
        assert SECRET not in json.dumps(run.data.params), run.info.run_id
        assert SECRET not in json.dumps(run.data.tags), run.info.run_id
    for task, run in mlflow_runs(mlflow_client, good.dag_run.run_id).items():
        if run.data.tags.get("airflow_ml.kind") != "step":
            continue
        record = mlflow_client.download_artifacts(run.info.run_id, "airflow_ml/step_record.json", tempfile.mkdtemp())
        assert SECRET not in Path(record).read_text(), task
    for version in mlflow_client.search_model_versions(f"name = '{MODEL}'"):
        assert SECRET not in json.dumps(version.tags)


# --- a failed step ----------------------------------------------------------------------------------------


def test_failed_featurize_still_reports_its_lineage(bad: Run) -> None:
    event = bad.fail["featurize"]
    facets = run_facets(event)
    assert COMMON | {"mlCode"} <= set(facets)
    assert "expect_column_values_to_not_be_null" in facets["errorMessage"]["message"]
    assertions = event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    failed = [a for a in assertions if not a["success"]]
    assert [(a["assertion"], a["column"]) for a in failed] == [("expect_column_values_to_not_be_null", "mean radius")]
    assert json.loads(failed[0]["actual"])["unexpected_count"] == 3
    assert "test" not in facets  # the features were never made, so never checked
    assert max(size for size, _ in bad.events) < MAX_EVENT_BYTES
    assert SECRET not in EVENTS.read_text()
