"""The reproduction report, from hand-written step records (pure: no MLflow, no Airflow)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflow_ml_provider.gate import Check, Subject, Verdict
from airflow_ml_provider.records.step_record import (
    AirflowIds,
    EvaluateResult,
    GateResult,
    RecordedModel,
    StepRecord,
)
from airflow_ml_provider.reproduce.compare import build_report, compare_model_files, compare_predictions
from airflow_ml_provider.reproduce.runner import write_report


def record(task_id: str, step: str, **fields: Any) -> StepRecord:
    return StepRecord(
        step=step,
        mlflow_run_id=f"run-{task_id}",
        airflow=AirflowIds("retrain", "manual__1", task_id, 1, -1),
        status="success",
        **fields,
    )


def model(version: str) -> RecordedModel:
    return RecordedModel("m", version, f"models:/m/{version}", None)


def pipeline(accuracy: float = 0.95, features: str = "blake3:aa", c: float = 1.0, numpy: str = "2.4.6") -> dict:
    env = {"packages": {"numpy": numpy, "pandas": "3.1.1"}, "packagesDigest": "sha256:x" + numpy}
    return {
        "featurize": record(
            "featurize", "featurize", outputs=[{"role": "features", "fingerprint": features}], environment=env
        ),
        "train": record(
            "train",
            "train",
            params={"C": c, "features_uri": "file:///elsewhere"},
            model=model("7"),
            environment=env,
        ),
        "evaluate": record(
            "evaluate",
            "evaluate",
            results=EvaluateResult("classification", {"accuracy": accuracy}, None, "blake3:holdout"),
            environment=env,
        ),
    }


PROBABILITIES = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
PICKLE = {"flavor": "sklearn", "serialization": "cloudpickle", "sha256": "ab"}
SKOPS = {"flavor": "sklearn", "serialization": "skops", "sha256": "cd"}


def models_compared(shift: float = 0.0, files: tuple[dict, dict] = (SKOPS, {**SKOPS, "sha256": "ef"})) -> dict:
    """What ``model_check.compare_models`` returns: the two models' outputs on a 3-row holdout compared."""
    original = {"predict": PROBABILITIES.argmax(axis=1), "predict_proba": PROBABILITIES}
    moved = PROBABILITIES + np.array([[shift, -shift], [0, 0], [0, 0]])
    reproduced = {"predict": moved.argmax(axis=1), "predict_proba": moved}
    return {"original": "models:/m/7", "reproduced": "models:/m/8", "holdout": "/data/holdout.parquet",
            **compare_predictions(original, reproduced, 1e-9), "fingerprint": compare_model_files(*files)}


def report(
    original: dict,
    reproduced: dict,
    reused: list[str] | None = None,
    tolerance: float = 1e-9,
    models: dict | None = None,
    overrides: dict | None = None,
) -> Any:
    return build_report(
        target="models:/m/3",
        original_steps=original,
        reproduced_steps=reproduced,
        original_run="a",
        reproduced_run="b",
        tolerance=tolerance,
        overrides=overrides or {},
        reused=reused or [],
        raw_inputs=[],
        models={"train": models_compared()} if models is None else models,
    )


def test_identical_rebuild_is_reproduced() -> None:
    result = report(pipeline(), pipeline())
    assert result.reproduced
    assert {s.task_id: s.outcome for s in result.steps} == dict.fromkeys(
        ["featurize", "train", "evaluate"], "identical"
    )
    assert result.environment_drift == {}
    assert result.reproduced_version == "7"


def test_metric_within_tolerance_counts_beyond_it_does_not() -> None:
    assert report(pipeline(0.95), pipeline(0.95 + 1e-12)).reproduced
    beyond = report(pipeline(0.95), pipeline(0.96))
    assert not beyond.reproduced
    assert "evaluate.accuracy" in beyond.summary
    metric = beyond.steps[2].metrics[0]
    assert metric["outcome"] == "different" and abs(metric["delta"] - 0.01) < 1e-12


def test_nan_metric_is_never_reproduced() -> None:
    assert not report(pipeline(0.95), pipeline(float("nan"))).reproduced


def test_changed_features_and_parameters_are_reported_but_locations_are_not() -> None:
    result = report(pipeline(), pipeline(features="blake3:bb", c=0.5))
    steps = {s.task_id: s for s in result.steps}
    assert steps["featurize"].outcome == "different"
    assert steps["featurize"].outputs[0] == {
        "role": "features",
        "original": "blake3:aa",
        "reproduced": "blake3:bb",
        "outcome": "different",
    }
    assert steps["train"].changed_params == {"C": [1.0, 0.5]}


def test_environment_drift_names_each_package_and_the_installed_set() -> None:
    result = report(pipeline(), pipeline(numpy="2.5.0"))
    assert result.environment_drift["numpy"] == ["2.4.6", "2.5.0"]
    assert "(all installed packages, digest)" in result.environment_drift
    assert "| numpy | 2.4.6 | 2.5.0 |" in result.to_markdown()


def test_reused_steps_are_marked_and_a_failed_rerun_is_different() -> None:
    reproduced = pipeline()
    del reproduced["featurize"]
    reproduced["evaluate"].status = "failed"
    result = report(pipeline(), reproduced, reused=["featurize"])
    outcomes = {s.task_id: s.outcome for s in result.steps}
    assert outcomes == {"featurize": "reused", "train": "identical", "evaluate": "different"}
    assert not result.reproduced, "a failed re-run is never a reproduction, even with equal metrics"
    assert "re-run failed: evaluate" in result.summary


def test_without_a_rerun_evaluation_nothing_is_claimed() -> None:
    reproduced = pipeline()
    del reproduced["evaluate"]
    result = report(pipeline(), reproduced)
    assert not result.reproduced
    assert "no evaluation was re-run" in result.summary


# --- the models themselves -------------------------------------------------------------------------


def test_a_rebuilt_model_with_other_predictions_is_not_reproduced_even_with_equal_metrics() -> None:
    result = report(pipeline(), pipeline(), models={"train": models_compared(shift=0.2)})

    train = next(s for s in result.steps if s.task_id == "train")
    assert train.outcome == "different"
    assert train.model is not None
    assert train.model["rows"] == 3 and train.model["rows_different"] == 1
    assert train.model["max_difference"] == pytest.approx(0.2)
    assert not result.reproduced
    assert "train: model predictions differ on 1 of 3 holdout rows (largest difference 0.2)" in result.summary
    assert "| train | different | predictions on the holdout (3 rows): different, 1 rows differ" in result.to_markdown()


def test_models_that_could_not_be_compared_are_never_identical() -> None:
    missing = report(pipeline(), pipeline(), models={})
    train = next(s for s in missing.steps if s.task_id == "train")
    assert train.outcome == "not compared" and not missing.reproduced
    assert "train: models not compared" in missing.summary

    gone = {"train": {"outcome": "not compared", "error": "recorded holdout /data/h.parquet changed"}}
    result = report(pipeline(), pipeline(), models=gone)
    assert not result.reproduced and "recorded holdout /data/h.parquet changed" in result.summary


def test_a_step_changed_by_set_is_never_identical() -> None:
    # Even when the value set is the recorded one and nothing comes out different.
    result = report(pipeline(), pipeline(), overrides={"train": {"C": 1.0}})

    train = next(s for s in result.steps if s.task_id == "train")
    assert train.outcome == "changed by --set" and train.overridden == {"C": 1.0}
    assert not result.reproduced
    assert "changed by --set: train.C" in result.summary
    assert "set C=1.0" in result.to_markdown()


def test_changed_params_without_set_make_the_step_different() -> None:
    result = report(pipeline(), pipeline(c=0.5))
    assert next(s for s in result.steps if s.task_id == "train").outcome == "different"
    assert not result.reproduced


def test_identical_predictions_and_byte_identical_pickles_are_identical() -> None:
    result = report(pipeline(), pipeline(), models={"train": models_compared(files=(PICKLE, PICKLE))})
    train = next(s for s in result.steps if s.task_id == "train")
    assert train.outcome == "identical" and result.reproduced
    assert train.model is not None and train.model["fingerprint"]["outcome"] == "identical"
    assert "train: predictions identical on 3 holdout rows" in result.summary


def test_pickles_that_differ_make_the_model_different() -> None:
    files = (PICKLE, {**PICKLE, "sha256": "other"})
    result = report(pipeline(), pipeline(), models={"train": models_compared(files=files)})
    assert next(s for s in result.steps if s.task_id == "train").outcome == "different"
    assert not result.reproduced and "model files differ" in result.summary


def test_compare_predictions_counts_rows_and_the_largest_difference() -> None:
    a = {"predict": np.array([1.0, 2.0, 3.0, 4.0])}
    assert compare_predictions(a, {"predict": a["predict"].copy()}, 1e-9)["outcome"] == "identical"

    near = compare_predictions(a, {"predict": np.array([1.0, 2.0 + 1e-12, 3.0, 4.0 - 1e-12])}, 1e-9)
    assert near["outcome"] == "within tolerance" and near["rows_different"] == 2 and near["rows_beyond_tolerance"] == 0
    assert near["max_difference"] == pytest.approx(1e-12, rel=0.01)

    far = compare_predictions(a, {"predict": np.array([1.0, 2.5, 3.0, 4.0])}, 1e-9)
    assert far["outcome"] == "different" and far["rows_different"] == 1 and far["max_difference"] == 0.5


def test_compare_predictions_labels_nan_and_shapes() -> None:
    labels = compare_predictions({"predict": np.array(["a", "b"])}, {"predict": np.array(["a", "c"])}, 1.0)
    assert labels["outcome"] == "different" and labels["rows_different"] == 1 and labels["max_difference"] is None

    nan = np.array([np.nan, 1.0])
    assert compare_predictions({"predict": nan}, {"predict": nan.copy()}, 0)["outcome"] == "identical"
    one_nan = compare_predictions({"predict": nan}, {"predict": np.array([0.0, 1.0])}, 1e9)
    assert one_nan["outcome"] == "different" and one_nan["max_difference"] == float("inf")

    shape = compare_predictions({"predict": np.zeros(3)}, {"predict": np.zeros(4)}, 1.0)
    assert shape["outcome"] == "different" and "shape" in shape["reason"]
    only_one = compare_predictions({"predict": np.zeros(3), "predict_proba": np.zeros((3, 2))},
                                   {"predict": np.zeros(3)}, 1.0)
    assert only_one["outcome"] == "different" and "predict_proba" in only_one["reason"]


def test_model_files_are_compared_only_where_the_serialisation_is_byte_stable() -> None:
    assert compare_model_files(PICKLE, PICKLE)["outcome"] == "identical"
    assert compare_model_files(PICKLE, {**PICKLE, "sha256": "x"})["outcome"] == "different"
    skops = compare_model_files(SKOPS, SKOPS)
    assert skops["outcome"] == "not compared" and "sklearn/skops is not byte-stable" in skops["reason"]
    pyfunc = {"flavor": "pyfunc", "serialization": None, "sha256": None}
    assert compare_model_files(pyfunc, pyfunc)["outcome"] == "not compared"
    assert compare_model_files(PICKLE, SKOPS)["outcome"] == "different"


# --- the gate and the report files -------------------------------------------------------------------


def gate_record(passed: bool, version: str) -> StepRecord:
    checks = (Check("metric:accuracy:threshold", passed, ""), Check("scenarios", True, ""))
    verdict = Verdict(Subject("m", version, None), passed, checks, datetime.now(timezone.utc), {})
    return record(
        "gate",
        "gate",
        model=model(version),
        results=GateResult(verdict),
        error=None if passed else "gate FAILED for models:/m/8: 1 of 2 checks failed",
    )


def test_the_gate_and_its_verdict_on_the_rebuilt_version_are_listed() -> None:
    original = {**pipeline(), "gate": gate_record(True, "7"), "promote": record("promote", "promote")}
    reproduced = {**pipeline(), "gate": gate_record(False, "8")}

    result = report(original, reproduced)

    assert [s.task_id for s in result.steps] == ["featurize", "train", "evaluate"]  # gate listed, not compared
    [gate] = result.gates
    assert (gate.original, gate.reproduced, gate.model) == ("passed", "failed", "models:/m/8")
    assert gate.failed_checks == ["metric:accuracy:threshold"]
    row = "| gate | verdict on models:/m/8: failed (original: passed) | failed checks: metric:accuracy:threshold |"
    assert row in result.to_markdown()
    assert result.to_dict()["gates"][0]["reproduced"] == "failed"


def test_a_gate_that_did_not_run_in_the_rebuild_says_so() -> None:
    result = report({**pipeline(), "gate": gate_record(True, "7")}, pipeline())
    assert [(g.original, g.reproduced) for g in result.gates] == [("passed", "not run")]


def test_a_new_report_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    first = report(pipeline(), pipeline())
    second = report(pipeline(0.95), pipeline(0.5))

    paths = [write_report(r, tmp_path) for r in (first, second, first)]

    assert [(md.name, js.name) for md, js in paths] == [
        ("reproduction.md", "reproduction.json"),
        ("reproduction-2.md", "reproduction-2.json"),
        ("reproduction-3.md", "reproduction-3.json"),
    ]
    assert (tmp_path / "reproduction.md").read_text() == first.to_markdown()
    assert (tmp_path / "reproduction-2.json").read_text() == second.to_json()
    (tmp_path / "reproduction-4.json").write_text("{}")  # half a pair (e.g. written by hand): skipped too
    assert write_report(first, tmp_path)[0].name == "reproduction-5.md"
