"""The reproduction report, from hand-written step records (pure: no MLflow, no Airflow)."""

from __future__ import annotations

from typing import Any

from airflow_ml_provider.records.step_record import StepRecord
from airflow_ml_provider.reproduce.compare import build_report


def record(task_id: str, step: str, **fields: Any) -> StepRecord:
    return StepRecord(
        step=step, mlflow_run_id=f"run-{task_id}", airflow={"task_id": task_id}, status="success", **fields
    )


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
            model={"name": "m", "version": "7"},
            environment=env,
        ),
        "evaluate": record("evaluate", "evaluate", results={"metrics": {"accuracy": accuracy}}, environment=env),
    }


def report(original: dict, reproduced: dict, reused: list[str] | None = None, tolerance: float = 1e-9) -> Any:
    return build_report(
        target="models:/m/3",
        original_steps=original,
        reproduced_steps=reproduced,
        original_run="a",
        reproduced_run="b",
        tolerance=tolerance,
        overrides={},
        reused=reused or [],
        raw_inputs=[],
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
