"""Shadow evidence end to end, against the real MLflow store and real ``dag.test()`` runs.

One registry state per module: a champion (C=1), a close challenger (C=0.5, the ``challenger`` alias) and a
deliberately worse candidate (C=1e-4: it predicts the majority class), trained by the real TrainOperator.
Then, in order: a replay before the champion scored anything (no traffic), two production batches scored by
the champion with the challenger as live shadow (``shadow_predict`` DAG, evidence accumulating between the
gate's two pokes), a replay-and-gate DAG run of the worse candidate, and the champion replaced (the live
evidence against the old champion becomes stale). The aliases are set directly: promotion is tested in
tests/promotion, here only the alias the gate reads matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dag.test_assets_and_links import returned, task_states
from tests.example import TARGET, example_module, train, transform
from tests.gate.conftest import GateOutcome, run_gate
from tests.support import STATE, make_context, read_record, run_dag

pytestmark = pytest.mark.dag

HERE = Path(__file__).parent
DAGS = HERE / "dags"
MODEL = "shadow_clf"
FIRST = "shadow_first"
EXPERIMENT = "shadow_tests"
POLICY: dict[str, Any] = {
    "require_data_expectations": False,
    "require_scenarios": False,
    "shadow": {"min_rows": 150, "min_agreement": 0.9, "max_latency_ratio": 50.0},
}


def context(task_id: str) -> dict[str, Any]:
    return make_context("shadow_tests", task_id)


def write_features(name: str, seed: int, rows: int = 200) -> Path:
    """A production batch: rows resampled from the raw data, featurized as the pipeline does."""
    import pandas as pd

    raw = pd.read_parquet(STATE / "data" / "breast_cancer.parquet")
    path = STATE / "data" / name
    transform(example_module("data").sample_batch(raw, rows, seed=seed)).to_parquet(path, index=False)
    return path


def gate(client: Any, version: str, model: str = MODEL, **policy: Any) -> GateOutcome:
    return run_gate(client, model, version, policy={**POLICY, **policy}, scenarios=None)


def step_run(client: Any, dag_id: str, dag_run_id: str, task_id: str) -> Any:
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    [run] = client.search_runs(
        [experiment],
        filter_string=f"tags.`airflow.run_id` = '{dag_run_id}' and tags.`airflow.task_id` = '{task_id}' "
        f"and tags.`airflow.dag_id` = '{dag_id}'",
    )
    return run


@pytest.fixture(scope="module")
def world(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> dict[str, Any]:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from airflow_ml_provider.operators.shadow import ShadowReplayOperator
    from airflow_ml_provider.operators.train import TrainOperator

    features = FeaturizeOperator(
        task_id="featurize", raw_uri=str(raw_data), transform=transform, experiment_name=EXPERIMENT
    ).execute(context("featurize"))

    def trained(c: float, model: str = MODEL) -> str:
        return str(
            TrainOperator(
                task_id="train",
                features=features,
                train=train,
                target_column=TARGET,
                registered_model_name=model,
                train_params={"C": c},
                experiment_name=EXPERIMENT,
            ).execute(context("train"))["version"]
        )

    out: dict[str, Any] = {"champion": trained(1.0), "good": trained(0.5), "bad": trained(1e-4)}
    mlflow_client.set_registered_model_alias(MODEL, "champion", out["champion"])
    mlflow_client.set_registered_model_alias(MODEL, "challenger", out["good"])

    out["no_traffic_replay"] = ShadowReplayOperator(
        task_id="replay", model=f"models:/{MODEL}/{out['bad']}", experiment_name=EXPERIMENT
    ).execute(context("replay"))
    out["no_traffic_gate"] = gate(mlflow_client, out["bad"])

    with create_session() as session:  # what the DAG processor does before dag.test() can run a DAG of this folder
        DagBundlesManager().sync_bundles_to_db(session=session)
    sync_bag_to_db(BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder"), "dags-folder", None)
    out["batches"] = [write_features("shadow-batch-1.parquet", seed=11), write_features("shadow-batch-2.parquet", 12)]
    out["predict_runs"] = [run_dag("shadow_predict", {"batch": str(out["batches"][0])}, folder=DAGS)]
    out["after_one"] = gate(mlflow_client, out["good"])
    out["predict_runs"].append(run_dag("shadow_predict", {"batch": str(out["batches"][1])}, folder=DAGS))
    out["after_two"] = gate(mlflow_client, out["good"])
    out["replay_run"] = run_dag("shadow_replay_gate", {"model": f"models:/{MODEL}/{out['bad']}"}, folder=DAGS)

    out["new_champion"] = trained(1.0)
    mlflow_client.set_registered_model_alias(MODEL, "champion", out["new_champion"])
    out["stale"] = gate(mlflow_client, out["good"])
    mlflow_client.set_registered_model_alias(MODEL, "champion", out["champion"])

    out["first"] = trained(1.0, FIRST)
    out["first_allow"] = gate(mlflow_client, out["first"], FIRST, first_version="allow")
    out["first_block"] = gate(mlflow_client, out["first"], FIRST)
    return out


def test_live_shadow_records_a_comparison_bound_to_both_versions_and_the_input(
    world: dict[str, Any], mlflow_client: Any
) -> None:
    import pandas as pd

    from airflow_ml_provider.operators.predict import SHADOW_COLUMNS

    dag_run = world["predict_runs"][0]
    assert task_states("shadow_predict", dag_run.run_id) == {"predict": "success"}
    run = step_run(mlflow_client, "shadow_predict", dag_run.run_id, "predict")
    assert run.data.tags["airflow_ml.shadow_model_version"] == world["good"]
    assert 0.9 <= run.data.metrics["shadow.agreement"] <= 1.0
    record = read_record(mlflow_client, run.info.run_id)
    shadow = record.results.shadow
    assert (shadow.kind, shadow.status, shadow.fraction) == ("live", "compared", 0.5)
    assert (shadow.primary_version, shadow.shadow_version) == (world["champion"], world["good"])
    [batch] = shadow.batches
    [given] = [entry for entry in record.inputs if entry["role"] == "input"]
    assert batch.input_fingerprint == given["fingerprint"] and batch.input_rows == 200
    comparison = batch.comparison
    assert comparison.rows == 100 and comparison.task == "classification"
    assert comparison.primary_ms_per_1k_rows > 0 and comparison.shadow_ms_per_1k_rows > 0
    assert comparison.probability_abs_delta is not None and comparison.probability_abs_delta.max <= 1

    predictions = pd.read_parquet(returned("shadow_predict", dag_run.run_id, "predict")["uri"])
    assert len(predictions) == 200 and set(predictions["model_version"]) == {world["champion"]}
    [side_by_side] = [entry for entry in record.outputs if entry["role"] == "shadow_comparison"]
    compared = pd.read_parquet(side_by_side["uri"])
    assert tuple(compared.columns) == SHADOW_COLUMNS and len(compared) == 100
    served = predictions.set_index("prediction_id").loc[compared["prediction_id"]]
    assert list(served["row_index"]) == list(compared["row_index"])
    assert list(served["prediction"]) == list(compared["primary_prediction"]), "the champion's own predictions"
    disagreeing = compared[compared["primary_prediction"] != compared["shadow_prediction"]]
    gap = (disagreeing["primary_probability"] - disagreeing["shadow_probability"]).abs()
    most = disagreeing.assign(gap=gap).sort_values("gap", ascending=False, kind="stable")["prediction_id"][:5]
    assert [d.prediction_id for d in comparison.disagreements] == list(most)
    assert comparison.agreement == pytest.approx(1 - len(disagreeing) / 100)


def test_the_sample_is_seeded_by_the_input_and_the_output_is_the_champions_alone(
    world: dict[str, Any], mlflow_client: Any
) -> None:
    """The same batch scored again without a shadow, and with a shadow that cannot be resolved: the
    predictions file is the same bytes each time; the failing shadow is recorded, not raised."""
    from airflow_ml_provider.operators.predict import BatchPredictOperator

    batch = str(world["batches"][0])
    shadowed = returned("shadow_predict", world["predict_runs"][0].run_id, "predict")
    plain = BatchPredictOperator(
        task_id="predict", model=f"models:/{MODEL}@champion", input=batch, experiment_name=EXPERIMENT
    ).execute(context("predict"))
    broken = BatchPredictOperator(
        task_id="predict",
        model=f"models:/{MODEL}@champion",
        input=batch,
        shadow=f"models:/{MODEL}@nobody",
        experiment_name=EXPERIMENT,
    ).execute(context("predict"))
    assert shadowed["fingerprint"] == plain["fingerprint"] == broken["fingerprint"]
    record = read_record(mlflow_client, broken["mlflow_run_id"])
    assert record.status == "success" and record.results.shadow.status == "failed"
    assert "nobody" in record.results.shadow.error and record.results.shadow.shadow_version is None
    assert "airflow_ml.shadow_model_version" not in mlflow_client.get_run(broken["mlflow_run_id"]).data.tags


def test_live_evidence_accumulates_across_predict_runs_until_the_gate_passes(world: dict[str, Any]) -> None:
    one, two = world["after_one"], world["after_two"]
    assert not one.passed and list(one.failures) == ["shadow:rows"]
    assert "100 rows on 1 production input(s) (live)" in one.failures["shadow:rows"][0]
    assert two.passed, two.message
    [rows] = [c for c in two.verdict["checks"] if c["name"] == "shadow:rows"]
    assert f"200 rows on 2 production input(s) (live) compared against champion v{world['champion']}" in rows["reason"]
    assert {c["name"] for c in two.verdict["checks"]} >= {"shadow:agreement", "shadow:latency_ratio"}


def test_replay_of_a_worse_candidate_fails_the_gate_naming_the_check(world: dict[str, Any], mlflow_client: Any) -> None:
    from tests.gate.conftest import recorded_verdict

    dag_run = world["replay_run"]
    assert task_states("shadow_replay_gate", dag_run.run_id) == {"replay": "success", "gate": "failed"}
    replay_run = step_run(mlflow_client, "shadow_replay_gate", dag_run.run_id, "replay")
    replay = read_record(mlflow_client, replay_run.info.run_id)
    summary = replay.results.summary
    assert (summary.kind, summary.status) == ("replay", "compared")
    assert (summary.primary_version, summary.shadow_version) == (world["champion"], world["bad"])
    live = [read_record(mlflow_client, step_run(mlflow_client, "shadow_predict", r.run_id, "predict").info.run_id)
            for r in world["predict_runs"]]
    assert sorted(b.source_run_id for b in summary.batches) == sorted(r.mlflow_run_id for r in live)
    assert set(summary.input_fingerprints) == {r.results.shadow.batches[0].input_fingerprint for r in live}
    assert summary.comparison.rows == 400 and summary.comparison.agreement < 0.9

    verdict = recorded_verdict(mlflow_client, MODEL, world["bad"])
    failed = {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}
    assert "shadow:agreement" in failed and "below the minimum 90.00%" in failed["shadow:agreement"]
    assert "shadow:rows" not in failed  # 400 replayed rows are enough: the agreement is what fails


def test_no_recorded_traffic_with_a_champion_fails_closed(world: dict[str, Any]) -> None:
    replay = world["no_traffic_replay"]
    assert replay["status"] == "no_traffic" and replay["batches"] == []
    outcome = world["no_traffic_gate"]
    assert not outcome.passed
    [reason] = outcome.failures["shadow:rows"]
    assert reason.startswith(f"no recorded traffic: no production rows compared against champion v{world['champion']}")


def test_evidence_against_a_former_champion_is_stale_and_not_counted(world: dict[str, Any]) -> None:
    outcome = world["stale"]
    assert not outcome.passed
    [reason] = outcome.failures["shadow:rows"]
    assert "no recorded traffic" in reason
    assert (
        f"2 piece(s) against champion v{world['champion']} not counted: stale, the champion is now "
        f"v{world['new_champion']}" in reason
    )


def test_no_champion_at_all_passes_only_by_the_first_version_rule(world: dict[str, Any]) -> None:
    allow, block = world["first_allow"], world["first_block"]
    assert allow.passed, allow.message
    [check] = [c for c in allow.verdict["checks"] if c["name"] == "shadow:rows"]
    assert "no champion (alias 'champion' is unset)" in check["reason"]
    assert "passed by the first-version rule 'allow'" in check["reason"]
    assert not block.passed and "first-version rule 'block'" in block.failures["shadow:rows"][0]


@pytest.mark.parametrize(
    ("shadow", "message"),
    [
        ({"min_rows": 100, "min_agreement": 0.9, "max_mean_abs_delta": 0.1}, "exactly one of min_agreement"),
        ({"min_rows": 100}, "got neither"),
        ({"min_rows": 0, "min_agreement": 0.9}, "min_rows must be >= 1"),
        ({"min_rows": 100, "min_agreement": "0.9"}, "write it unquoted"),
        ({"min_rows": 100, "min_agreement": 0.9, "max_latency": 2}, "Did you mean 'max_latency_ratio'"),
    ],
)
def test_a_malformed_shadow_policy_is_refused_when_the_dag_is_parsed(shadow: dict[str, Any], message: str) -> None:
    from airflow_ml_provider.sensors.model_gate import ModelGateSensor

    with pytest.raises(ValueError, match=message):
        ModelGateSensor(task_id="gate", model="models:/m/1", policy={**POLICY, "shadow": shadow})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shadow": "models:/m@challenger", "shadow_fraction": 0}, r"shadow_fraction must be a number in \(0, 1\]"),
        ({"shadow": "models:/m@challenger", "shadow_fraction": 1.5}, r"in \(0, 1\]"),
        ({"shadow": "models:/m@champion"}, "cannot shadow itself"),
        ({"shadow": "models:/other@challenger"}, "another registered model"),
        ({"shadow": "m@challenger"}, "models:/"),
    ],
)
def test_a_wrong_literal_shadow_is_a_dag_import_error(kwargs: dict[str, Any], message: str) -> None:
    from airflow_ml_provider.operators.predict import BatchPredictOperator

    with pytest.raises(ValueError, match=message):
        BatchPredictOperator(task_id="predict", model="models:/m@champion", input="/x.parquet", **kwargs)


@pytest.mark.spec
def test_the_shadow_facet_is_on_the_predict_and_replay_events_and_validates(world: dict[str, Any]) -> None:
    from tests.lineage import spec
    from tests.support import read_events

    validator = spec.Validator()
    found = {}
    for event in read_events():
        facet = event.get("run", {}).get("facets", {}).get("mlShadow")
        if event["eventType"] == "COMPLETE" and facet and facet["status"] == "compared":
            assert validator.validate_event(event) == []
            found[facet["kind"]] = facet
    live, replay = found["live"], found["replay"]
    assert (live["primaryVersion"], live["shadowVersion"], live["rows"]) == (world["champion"], world["good"], 100)
    assert replay["shadowVersion"] == world["bad"] and replay["rows"] == 400 and replay["agreement"] < 0.9
    assert live["_schemaURL"].endswith("MLShadowRunFacet.json#/$defs/MLShadowRunFacet")
