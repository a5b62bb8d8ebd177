"""BatchPredictOperator in the example DAG, and ``airflow-ml lineage`` walking back from what it wrote.

Runs the example DAG with dag.test() (real Airflow DB, MLflow store, OpenLineage file transport),
then reads the lineage from MLflow only, in-process through the CLI's ``main``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import RAW_URI, STATE, read_events, run_dag

DAG_ID = "breast_cancer_retrain"
MODEL = "breast_cancer_classifier"
TASKS = ["featurize", "train", "evaluate", "simulate", "gate", "promote", "predict"]
pytestmark = pytest.mark.dag


def task_states(run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=run_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def step_record(client: Any, dag_run_id: str, task_id: str) -> dict[str, Any]:
    runs = client.search_runs(
        [client.get_experiment_by_name(DAG_ID).experiment_id],
        filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow.task_id` = '{task_id}'",
    )
    assert len(runs) == 1, f"expected one MLflow run for {task_id} of {dag_run_id}, found {len(runs)}"
    target = STATE / "records" / runs[0].info.run_id
    target.mkdir(parents=True, exist_ok=True)
    path = client.download_artifacts(runs[0].info.run_id, "airflow_ml/step_record.json", str(target))
    return json.loads(Path(path).read_text())


def complete_event(dag_run_id: str, task_id: str) -> dict[str, Any]:
    found = [
        e
        for e in read_events()
        if e["eventType"] == "COMPLETE"
        and e["job"]["name"] == f"{DAG_ID}.{task_id}"
        and e["run"]["facets"].get("airflow", {}).get("dagRun", {}).get("run_id") == dag_run_id
    ]
    assert len(found) == 1, f"expected one COMPLETE event for {task_id} of {dag_run_id}, found {len(found)}"
    return found[0]


def lineage(*args: str) -> tuple[int, str, str]:
    """``airflow-ml lineage ARGS`` in-process: (exit code, stdout, stderr)."""
    from airflow_ml_provider.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["lineage", *args])
        except SystemExit as e:  # argparse errors
            code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def lineage_json(target: str) -> dict[str, Any]:
    code, out, err = lineage(target, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def node(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in graph["nodes"] if n["id"] == node_id)


def raw_sources(graph: dict[str, Any]) -> list[tuple[str, str]]:
    return [(node(graph, s)["uri"], node(graph, s)["fingerprint"]) for s in graph["sources"]]


def upstream_chain(graph: dict[str, Any], start: str) -> list[str]:
    """Node ids from ``start`` upstream, following the first incoming edge that is not the model."""
    chain, current = [start], start
    while True:
        incoming = [e for e in graph["edges"] if e["to"] == current and e["role"] != "model"]
        if not incoming:
            return chain
        current = incoming[0]["from"]
        chain.append(current)


class Run:
    """One DAG run and what its steps recorded."""

    def __init__(self, dag_run: Any, client: Any) -> None:
        self.run_id = dag_run.run_id
        self.states = task_states(self.run_id)
        assert self.states == dict.fromkeys(TASKS, "success"), f"DAG run {self.run_id}: {self.states}"
        self.featurize = step_record(client, self.run_id, "featurize")
        self.train = step_record(client, self.run_id, "train")
        self.predict = step_record(client, self.run_id, "predict")
        self.features = self.featurize["outputs"][0]
        self.model_version = self.train["model"]["version"]
        self.predictions = self.predict["outputs"][0]
        self.predictions_path = Path(self.predictions["uri"].removeprefix("file://"))


@pytest.fixture(scope="module")
def first(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> Run:
    return Run(run_dag(DAG_ID, {"raw_uri": str(raw_data)}), mlflow_client)


def test_predict_runs_after_promotion_with_the_champion(first: Run, mlflow_client: Any) -> None:
    assert first.states == dict.fromkeys(TASKS, "success")
    # promote moved the alias to this run's version just before predict resolved it
    assert first.predict["model"]["version"] == first.model_version
    assert first.predict["model"]["alias"] == "champion"
    assert first.predict["params"]["model"] == f"models:/{MODEL}@champion"
    assert first.predict["params"]["model_version"] == first.model_version
    assert first.predict["inputs"][0]["fingerprint"] == first.features["fingerprint"]
    assert first.predict["inputs"][0]["producer_run_id"] == first.featurize["mlflow_run_id"]
    tags = mlflow_client.get_run(first.predict["mlflow_run_id"]).data.tags
    assert tags["airflow_ml.output_fingerprint"] == first.predictions["fingerprint"]
    assert tags["airflow_ml.input_fingerprint"] == first.features["fingerprint"]
    assert tags["airflow_ml.model_alias"] == "champion"
    assert tags["airflow_ml.model_version"] == first.model_version


def test_predictions_file_names_the_model_and_one_stable_id_per_row(first: Run) -> None:
    import pandas as pd

    from airflow_ml_provider.data.fingerprint import fingerprint_file
    from airflow_ml_provider.operators.predict import prediction_ids

    predictions = pd.read_parquet(first.predictions_path)
    features = pd.read_parquet(first.features["uri"].removeprefix("file://"))

    assert first.predictions_path.parent == STATE / "artifacts" / "predictions"
    assert fingerprint_file(first.predictions_path) == first.predictions["fingerprint"]
    assert len(predictions) == len(features) == 569
    assert predictions["prediction_id"].is_unique
    assert list(predictions["row_index"]) == list(range(569))
    assert set(predictions["model_name"]) == {MODEL}
    assert set(predictions["model_version"]) == {first.model_version}
    assert set(predictions["prediction"]) <= {0, 1}
    assert predictions["probability"].between(0, 1).all()
    assert ((predictions["probability"] >= 0.5) == (predictions["prediction"] == 1)).all()
    # deterministic: the same input bytes scored by the same version give the same ids
    model_fingerprint = first.predict["model"]["fingerprint"]
    expected = prediction_ids(
        first.features["fingerprint"], f"models:/{MODEL}/{first.model_version}", model_fingerprint, 569
    )
    assert list(predictions["prediction_id"]) == expected
    accuracy = (predictions["prediction"].to_numpy() == features["target"].to_numpy()).mean()
    assert accuracy > 0.9


def test_predict_complete_event_reads_features_and_model_and_writes_predictions(first: Run) -> None:
    event = complete_event(first.run_id, "predict")

    inputs = [d["name"] for d in event["inputs"]]
    assert inputs == [first.features["uri"].removeprefix("file://"), f"models:/{MODEL}/{first.model_version}"]
    assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == first.features["fingerprint"]
    model = event["inputs"][1]["facets"]
    assert model["datasetType"]["datasetType"] == "MODEL"
    assert model["version"]["datasetVersion"] == first.predict["model"]["fingerprint"]
    assert [d["name"] for d in event["outputs"]] == [str(first.predictions_path)]
    output = event["outputs"][0]
    assert output["facets"]["version"]["datasetVersion"] == first.predictions["fingerprint"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 569
    assert {f["name"] for f in output["facets"]["schema"]["fields"]} >= {
        "prediction_id",
        "row_index",
        "prediction",
        "probability",
        "model_name",
        "model_version",
    }


def test_lineage_walks_from_the_predictions_file_back_to_the_raw_data(first: Run) -> None:
    from airflow_ml_provider.data.fingerprint import fingerprint_file

    graph = lineage_json(str(first.predictions_path))

    assert graph["complete"] is True, graph["problems"]
    assert raw_sources(graph) == [(RAW_URI.as_uri(), fingerprint_file(RAW_URI))]
    chain = upstream_chain(graph, graph["target"])
    kinds = [node(graph, n)["kind"] for n in chain]
    assert kinds == ["dataset", "step", "dataset", "step", "dataset"]  # predictions <- predict <- features <- ...
    assert [node(graph, n).get("step") for n in chain[1::2]] == ["predict", "featurize"]

    predict = node(graph, f"run:{first.predict['mlflow_run_id']}")
    assert predict["airflow"]["dag_id"] == DAG_ID and predict["airflow"]["run_id"] == first.run_id
    assert predict["airflow"]["task_id"] == "predict"
    model_edge = next(e for e in graph["edges"] if e["to"] == predict["id"] and e["role"] == "model")
    model = node(graph, model_edge["from"])
    assert model["version"] == first.model_version and model["fingerprint"] == first.predict["model"]["fingerprint"]

    train = node(graph, f"run:{first.train['mlflow_run_id']}")
    assert train["code"] == "breast_cancer/pipeline.py:train" and train["params"]["C"] == 1.0
    assert train["inputs"][0]["fingerprint"] == first.features["fingerprint"]
    featurize = node(graph, f"run:{first.featurize['mlflow_run_id']}")
    assert featurize["code"] == "breast_cancer/pipeline.py:transform"
    assert featurize["airflow"]["run_id"] == first.run_id
    assert featurize["params"]["raw_fingerprint"] == fingerprint_file(RAW_URI)
    # the features the model was trained on are the features that were scored: one node, reached twice
    features_id = chain[2]
    assert {e["to"] for e in graph["edges"] if e["from"] == features_id} == {predict["id"], train["id"]}


def test_lineage_of_the_champion_alias_text_and_dot(first: Run, mlflow_client: Any) -> None:
    from airflow_ml_provider.data.fingerprint import fingerprint_file

    champion = mlflow_client.get_model_version_by_alias(MODEL, "champion").version
    graph = lineage_json(f"models:/{MODEL}@champion")
    assert graph["target"] == f"models:/{MODEL}/{champion}"
    assert graph["complete"] is True and "champion" in node(graph, graph["target"])["aliases"]
    assert raw_sources(graph) == [(RAW_URI.as_uri(), fingerprint_file(RAW_URI))]

    code, text, _ = lineage(f"models:/{MODEL}/{first.model_version}")
    assert code == 0
    assert f"model: models:/{MODEL}/{first.model_version}" in text
    assert f"raw: {RAW_URI.as_uri()}" in text and fingerprint_file(RAW_URI) in text
    assert "code: breast_cancer/pipeline.py:transform" in text

    code, dot, _ = lineage(str(first.predictions_path), "--format", "dot")
    assert code == 0
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert dot.count("->") >= 6


def test_lineage_of_unknown_targets_fails_clearly(first: Run, tmp_path: Path) -> None:
    code, out, err = lineage(str(tmp_path / "nope.parquet"))
    assert code == 2 and not out
    assert "neither a model reference" in err and "nope.parquet" in err

    code, _, err = lineage("models:/breast_cancer_classifier")
    assert code == 2 and "not a model reference" in err

    code, _, err = lineage(f"models:/{MODEL}/9999")
    assert code == 1 and f"models:/{MODEL}/9999 is not in the registry" in err

    code, _, err = lineage(f"models:/{MODEL}@no_such_alias")
    assert code == 1 and "alias 'no_such_alias'" in err and "is not set" in err

    stranger = tmp_path / "stranger.parquet"
    stranger.write_bytes(b"not written by any step")
    code, _, err = lineage(str(stranger))
    assert code == 1 and "no step run recorded in MLflow wrote" in err

    code, _, err = lineage(str(first.predictions_path), "--format", "yaml")
    assert code == 2 and "invalid choice" in err


def test_changing_one_value_of_the_raw_data_changes_every_downstream_lineage(
    first: Run, mlflow_client: Any, tmp_path: Path
) -> None:
    import pandas as pd

    from airflow_ml_provider.data.fingerprint import fingerprint_file

    raw = pd.read_parquet(RAW_URI)
    raw.loc[0, "mean radius"] = raw.loc[0, "mean radius"] + 0.001
    changed_uri = tmp_path / "breast_cancer_changed.parquet"
    raw.to_parquet(changed_uri, index=False)
    original_fp, changed_fp = fingerprint_file(RAW_URI), fingerprint_file(changed_uri)
    assert original_fp != changed_fp

    second = Run(run_dag(DAG_ID, {"raw_uri": str(changed_uri)}), mlflow_client)
    assert second.states == dict.fromkeys(TASKS, "success")

    assert second.features["fingerprint"] != first.features["fingerprint"]
    assert second.train["inputs"][0]["fingerprint"] == second.features["fingerprint"]
    assert second.model_version != first.model_version
    assert second.predict["model"]["version"] == second.model_version
    assert second.predictions["fingerprint"] != first.predictions["fingerprint"]

    artifacts = {
        "features": second.features["uri"].removeprefix("file://"),
        "model": f"models:/{MODEL}/{second.model_version}",
        "predictions": str(second.predictions_path),
    }
    for what, target in artifacts.items():
        graph = lineage_json(target)
        assert graph["complete"] is True, (what, graph["problems"])
        assert raw_sources(graph) == [(changed_uri.as_uri(), changed_fp)], what
    # the first run's lineage still names the original raw data
    assert raw_sources(lineage_json(str(first.predictions_path))) == [(RAW_URI.as_uri(), original_fp)]
    assert raw_sources(lineage_json(f"models:/{MODEL}/{first.model_version}")) == [(RAW_URI.as_uri(), original_fp)]


# --- the operator on its own (outside a DAG run), against the version the DAG registered ----------


@dataclasses.dataclass(frozen=True)
class _TaskInstance:
    """What the operators read from ``context["ti"]``."""

    dag_id: str
    run_id: str
    task_id: str = "predict"
    try_number: int = 1
    map_index: int = -1


def execute_predict(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
    import uuid

    from airflow_ml_provider.operators.predict import BatchPredictOperator

    op = BatchPredictOperator(task_id="predict", **kwargs)
    context = {"ti": _TaskInstance(dag_id="predict_operator_tests", run_id=f"manual__{uuid.uuid4().hex[:12]}")}
    return op, context


def failed_record(client: Any, context: dict[str, Any]) -> dict[str, Any]:
    ti = context["ti"]
    runs = client.search_runs(
        [client.get_experiment_by_name(ti.dag_id).experiment_id],
        filter_string=f"tags.`airflow.run_id` = '{ti.run_id}' and tags.`airflow_ml.kind` = 'step'",
    )
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    target = STATE / "records" / runs[0].info.run_id
    target.mkdir(parents=True, exist_ok=True)
    path = client.download_artifacts(runs[0].info.run_id, "airflow_ml/step_record.json", str(target))
    record = json.loads(Path(path).read_text())
    assert record["status"] == "failed"
    return record


def test_version_reference_and_reruns_give_the_same_prediction_ids(first: Run) -> None:
    import pandas as pd

    features = first.features["uri"]
    op, context = execute_predict(
        model=f"models:/{MODEL}/{first.model_version}", input=features, keep_columns=["target"]
    )
    result = op.execute(context)
    again, context2 = execute_predict(
        model=f"models:/{MODEL}/{first.model_version}", input=features, keep_columns=["target"]
    )
    assert again.execute(context2)["fingerprint"] == result["fingerprint"]  # same bytes: content-addressed

    assert result["alias"] is None and result["version"] == first.model_version
    assert result["model_uri"] == f"models:/{MODEL}/{first.model_version}"
    scored = pd.read_parquet(result["uri"].removeprefix("file://"))
    in_dag = pd.read_parquet(first.predictions_path)
    assert list(scored.columns) == [
        "prediction_id",
        "row_index",
        "target",
        "prediction",
        "probability",
        "model_name",
        "model_version",
    ]
    # by version or through the alias, the same input bytes and version give the same ids and predictions
    assert list(scored["prediction_id"]) == list(in_dag["prediction_id"])
    assert list(scored["prediction"]) == list(in_dag["prediction"])


def test_an_unset_alias_fails_naming_it_and_still_reports_the_input(first: Run, mlflow_client: Any) -> None:
    from airflow_ml_provider.model.reference import ModelReferenceError

    op, context = execute_predict(model=f"models:/{MODEL}@nobody_promoted_me", input=first.features["uri"])
    with pytest.raises(ModelReferenceError, match="Alias 'nobody_promoted_me' of registered model") as error:
        op.execute(context)
    assert f"models:/{MODEL}@nobody_promoted_me" in str(error.value)
    assert "nobody_promoted_me" in failed_record(mlflow_client, context)["error"]
    lineage_on_failure = op.get_openlineage_facets_on_failure(None)
    assert [d.name for d in lineage_on_failure.inputs] == [first.features["uri"].removeprefix("file://")]


def test_input_without_the_feature_columns_fails_naming_them(first: Run, mlflow_client: Any) -> None:
    from airflow_ml_provider.data.datasets import DatasetError

    # the raw data has the same measurements under other names ("mean radius", not "mean_radius")
    written_before = set((STATE / "artifacts" / "predictions").iterdir())
    op, context = execute_predict(model=f"models:/{MODEL}/{first.model_version}", input=str(RAW_URI))
    with pytest.raises(DatasetError, match="lacks feature columns") as error:
        op.execute(context)
    assert "'mean_radius'" in str(error.value) and f"models:/{MODEL}/{first.model_version}" in str(error.value)
    record = failed_record(mlflow_client, context)
    assert "'mean_radius'" in record["error"]
    assert record["inputs"][0]["uri"] == RAW_URI.as_uri()  # what it tried to score is on the record
    assert set((STATE / "artifacts" / "predictions").iterdir()) == written_before, "no predictions written"


def test_malformed_model_references_fail_when_the_dag_is_parsed() -> None:
    from airflow_ml_provider.model.reference import ModelReferenceError
    from airflow_ml_provider.operators.predict import BatchPredictOperator

    with pytest.raises(ModelReferenceError, match="'models:/<name>@<alias>'"):
        BatchPredictOperator(task_id="p", model="models:/clf@", input="x.parquet")
    with pytest.raises(ValueError, match="clash"):
        BatchPredictOperator(task_id="p", model="models:/clf/1", input="x.parquet", keep_columns=["prediction"])
