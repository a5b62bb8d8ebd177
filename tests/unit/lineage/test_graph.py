"""The lineage graph from hand-written step records: no MLflow, no Airflow."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from airflow_ml_provider.lineage.graph import (
    InMemorySource,
    LineageError,
    Target,
    build_graph,
    dataset_id,
    parse_target,
    render_dot,
    render_json,
    render_text,
)

RAW = {"role": "raw", "uri": "file:///data/raw.parquet", "fingerprint": "blake3:raw", "rows": 569}
FEATURES = {"role": "features", "uri": "file:///art/features/f.parquet", "fingerprint": "blake3:feat", "rows": 569}
PREDICTIONS = {"role": "predictions", "uri": "file:///art/predictions/p.parquet", "fingerprint": "blake3:pred"}
MODEL = {"name": "clf", "version": "1", "uri": "models:/clf/1", "fingerprint": "blake3:model"}


def airflow(task_id: str, run_id: str = "manual__1") -> dict[str, Any]:
    return {"dag_id": "retrain", "run_id": run_id, "task_id": task_id, "try_number": 1, "map_index": -1}


def full(record: dict[str, Any]) -> dict[str, Any]:
    """A step record's JSON with the fields a test does not care about at their empty values."""
    empty = {"inputs": [], "outputs": [], "params": {}, "code": None, "model": None, "results": {}, "error": None}
    return {**empty, "schema_version": 1, **record}


def records() -> list[dict[str, Any]]:
    return [
        full({
            "step": "featurize",
            "mlflow_run_id": "f1",
            "airflow": airflow("featurize"),
            "inputs": [RAW],
            "outputs": [FEATURES],
            "params": {"raw_uri": RAW["uri"], "raw_fingerprint": RAW["fingerprint"], "clip_quantile": 0.995},
            "code": "pipeline:transform",
            "results": {"expectations": []},
            "status": "success",
            "recorded_at": "2026-01-01T00:00:01+00:00",
        }),
        full({
            "step": "train",
            "mlflow_run_id": "t1",
            "airflow": airflow("train"),
            "inputs": [FEATURES],
            "outputs": [
                {"role": "train", "uri": "file:///art/splits/a.parquet", "fingerprint": "blake3:a"},
                {"role": "holdout", "uri": "file:///art/splits/b.parquet", "fingerprint": "blake3:b"},
            ],
            "params": {"C": 1.0, "seed": 42},
            "code": "pipeline:train",
            "model": dict(MODEL, estimator="sklearn.pipeline.Pipeline"),
            "status": "success",
            "recorded_at": "2026-01-01T00:00:02+00:00",
        }),
        full({
            "step": "predict",
            "mlflow_run_id": "p1",
            "airflow": airflow("predict"),
            "inputs": [dict(FEATURES, role="input", producer_run_id="f1")],
            "outputs": [PREDICTIONS],
            "params": {"model": "models:/clf@champion", "model_version": "1"},
            "code": None,
            "model": dict(MODEL, alias="champion"),
            "status": "success",
            "recorded_at": "2026-01-01T00:00:03+00:00",
        }),
    ]


def versions() -> list[dict[str, Any]]:
    return [
        {
            "name": "clf",
            "version": "1",
            "aliases": ["champion"],
            "run_id": "t1",
            "tags": {
                "airflow_ml.training_run_id": "t1",
                "airflow_ml.model_fingerprint": "blake3:model",
                "airflow_ml.evidence.featurize": "f1",
                "airflow.dag_id": "retrain",
                "airflow.run_id": "manual__1",
                "airflow.task_id": "train",
            },
        }
    ]


def source(recs: list[dict[str, Any]] | None = None, vers: list[dict[str, Any]] | None = None) -> InMemorySource:
    return InMemorySource(
        recs if recs is not None else records(),
        vers if vers is not None else versions(),
        {("clf", "champion"): "1"},
    )


def predictions_target() -> Target:
    return Target(kind="file", text="p.parquet", path=PREDICTIONS["uri"], fingerprint=PREDICTIONS["fingerprint"])


def edges(graph: Any) -> set[tuple[str, str, str | None]]:
    return {(e["from"], e["to"], e["role"]) for e in graph.edges}


RAW_ID = dataset_id(RAW["uri"], RAW["fingerprint"])
FEATURES_ID = dataset_id(FEATURES["uri"], FEATURES["fingerprint"])
PREDICTIONS_ID = dataset_id(PREDICTIONS["uri"], PREDICTIONS["fingerprint"])


def test_parse_target_forms() -> None:
    assert parse_target("models:/clf/3") == Target(kind="version", text="models:/clf/3", name="clf", version="3")
    assert parse_target("models:/clf@champion") == Target(
        kind="alias", text="models:/clf@champion", name="clf", alias="champion"
    )
    assert parse_target("/tmp/p.parquet").kind == "file"
    for bad in ("models:/clf", "models:/clf/latest", "models:/@champion", "models:/clf@"):
        with pytest.raises(LineageError, match="not a model reference"):
            parse_target(bad)


def test_predictions_walk_back_to_the_raw_data() -> None:
    graph = build_graph(predictions_target(), source())

    assert graph.complete, graph.problems
    assert graph.target == PREDICTIONS_ID
    assert graph.sources() == [RAW_ID]
    raw = graph.nodes[RAW_ID]
    assert (raw["uri"], raw["fingerprint"], raw["rows"]) == (RAW["uri"], "blake3:raw", 569)
    assert edges(graph) == {
        ("run:p1", PREDICTIONS_ID, "predictions"),
        (FEATURES_ID, "run:p1", "input"),
        ("models:/clf/1", "run:p1", "model"),
        ("run:f1", FEATURES_ID, "features"),
        (RAW_ID, "run:f1", "raw"),
        ("run:t1", "models:/clf/1", "model"),
        (FEATURES_ID, "run:t1", "features"),
    }
    # the features the model was trained on and the features it scored are one node
    assert sum(1 for n in graph.nodes.values() if n["kind"] == "dataset") == 3

    featurize = graph.nodes["run:f1"]
    assert featurize["step"] == "featurize" and featurize["code"] == "pipeline:transform"
    assert featurize["airflow"]["task_id"] == "featurize" and featurize["mlflow_run_id"] == "f1"
    assert featurize["params"]["clip_quantile"] == 0.995
    assert featurize["inputs"] == [RAW] and featurize["outputs"] == [FEATURES]
    assert "results" not in featurize
    train = graph.nodes["run:t1"]
    assert train["params"] == {"C": 1.0, "seed": 42}
    assert [o["fingerprint"] for o in train["outputs"]] == ["blake3:a", "blake3:b"]
    model = graph.nodes["models:/clf/1"]
    assert model["fingerprint"] == "blake3:model" and model["aliases"] == ["champion"]
    assert model["training_run_id"] == "t1"
    predict = graph.nodes["run:p1"]
    assert predict["model"]["alias"] == "champion"


def test_version_and_alias_targets_give_the_same_graph() -> None:
    by_version = build_graph(parse_target("models:/clf/1"), source())
    by_alias = build_graph(parse_target("models:/clf@champion"), source())

    assert by_version.complete and by_alias.complete
    assert by_version.target == by_alias.target == "models:/clf/1"
    assert edges(by_version) == edges(by_alias)
    assert by_version.sources() == [RAW_ID]
    assert "run:p1" not in by_version.nodes  # predictions are downstream, not upstream


def test_unknown_targets_are_errors_naming_them() -> None:
    with pytest.raises(LineageError, match="alias 'staging' of registered model 'clf' is not set"):
        build_graph(parse_target("models:/clf@staging"), source())
    with pytest.raises(LineageError, match="models:/clf/7 is not in the registry"):
        build_graph(parse_target("models:/clf/7"), source())
    stranger = Target(kind="file", text="x.parquet", path="file:///x.parquet", fingerprint="blake3:unknown")
    with pytest.raises(LineageError, match="no step run recorded in MLflow wrote x.parquet"):
        build_graph(stranger, source())


def test_the_named_producer_wins_over_a_newer_run_that_wrote_the_same_bytes() -> None:
    recs = records()
    rerun = copy.deepcopy(recs[0])
    rerun.update(mlflow_run_id="f2", recorded_at="2026-02-01T00:00:00+00:00", airflow=airflow("featurize", "m2"))
    graph = build_graph(predictions_target(), source([*recs, rerun]))

    assert graph.complete
    assert ("run:f1", FEATURES_ID, "features") in edges(graph)
    assert "run:f2" not in graph.nodes
    assert graph.nodes[FEATURES_ID]["other_producer_runs"] == ["f2"]


def test_without_a_named_producer_the_newest_run_is_taken() -> None:
    recs = records()
    recs[2]["inputs"][0].pop("producer_run_id")
    vers = versions()
    del vers[0]["tags"]["airflow_ml.evidence.featurize"]
    rerun = copy.deepcopy(recs[0])
    rerun.update(mlflow_run_id="f2", recorded_at="2026-02-01T00:00:00+00:00")
    graph = build_graph(predictions_target(), source([*recs, rerun], vers))

    assert ("run:f2", FEATURES_ID, "features") in edges(graph)
    assert graph.nodes[FEATURES_ID]["other_producer_runs"] == ["f1"]


def test_a_named_producer_that_did_not_write_the_data_is_reported_and_bypassed() -> None:
    recs = records()
    recs[2]["inputs"][0]["producer_run_id"] = "t1"  # the train run did not write the features
    graph = build_graph(predictions_target(), source(recs))

    assert not graph.complete
    assert any("t1 is named as the producer" in p and "does not list it" in p for p in graph.problems)
    assert ("run:f1", FEATURES_ID, "features") in edges(graph)


def test_missing_training_record_makes_the_lineage_incomplete() -> None:
    recs = [r for r in records() if r["mlflow_run_id"] != "t1"]
    graph = build_graph(parse_target("models:/clf/1"), source(recs))

    assert not graph.complete
    assert graph.problems == ["training run t1 of models:/clf/1 has no readable step record"]
    assert graph.to_dict()["complete"] is False
    assert "INCOMPLETE" in render_text(graph)


def test_fingerprint_mismatches_are_problems() -> None:
    vers = versions()
    vers[0]["tags"]["airflow_ml.model_fingerprint"] = "blake3:tampered"
    graph = build_graph(predictions_target(), source(vers=vers))

    assert any("differs from the one recorded at training" in p for p in graph.problems)
    assert any("step run p1 used models:/clf/1 with fingerprint blake3:model" in p for p in graph.problems)


def test_a_different_raw_fingerprint_reaches_every_downstream_artifact() -> None:
    changed = copy.deepcopy(records())
    changed[0]["inputs"][0]["fingerprint"] = "blake3:raw-changed"
    graph = build_graph(predictions_target(), source(changed))
    assert [graph.nodes[s]["fingerprint"] for s in graph.sources()] == ["blake3:raw-changed"]


def test_renderings() -> None:
    graph = build_graph(predictions_target(), source())

    text = render_text(graph)
    assert text.splitlines()[:2] == ["lineage of p.parquet", f"predictions: {PREDICTIONS['uri']}"]
    assert f"raw: {RAW['uri']}" in text and "fingerprint blake3:raw, 569 rows" in text
    assert "source data (no recorded producer)" in text
    assert "(shown above)" in text  # the features reached through the model as well
    assert "code: pipeline:transform" in text and "task_id=featurize" in text

    data = json.loads(render_json(graph))
    assert data["target"] == PREDICTIONS_ID and data["complete"] is True
    assert {n["id"] for n in data["nodes"]} == set(graph.nodes)
    assert len(data["edges"]) == len(graph.edges)

    dot = render_dot(graph)
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == len(graph.edges)
    assert f'"{RAW_ID}" -> "run:f1" [label="raw"];' in dot


def test_dot_escapes_quotes_and_backslashes() -> None:
    recs = records()
    recs[0]["inputs"][0] = dict(RAW, uri='file:///data/we"ird\\name.parquet')
    dot = render_dot(build_graph(predictions_target(), source(recs)))
    assert 'we\\"ird\\\\name.parquet' in dot
