"""Tests for the scenario runner (scenarios/runner.py) and its JSON-safe report.

The runner is exercised with a real scikit-learn model, plus small plain-Python predict functions
for the edge cases a real model does not produce on demand (raising, wrong length, NaN, odd types).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.scenarios.runner import (
    MAX_RECORDED_PREDICTIONS,
    ScenarioResult,
    ScenarioRunReport,
    run_scenarios,
)
from airflow_ml_provider.scenarios.spec import MinAccuracy, Scenario, ScenarioSuite, load_scenarios, parse_scenarios
from tests.support import MODEL_SUITE, scenario

FEATURES = ["mean radius", "mean texture"]


# --------------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------------


def suite_of(*scenarios: dict[str, Any]) -> ScenarioSuite:
    """Build a suite in memory through the same validation as files."""
    return ScenarioSuite(
        path="inline.yaml", scenarios=parse_scenarios({"scenarios": list(scenarios)}), fingerprint="0" * 64
    )


def constant(value: Any) -> Callable[[pd.DataFrame], list[Any]]:
    """A predict that answers ``value`` for every row."""
    return lambda frame: [value] * len(frame)


@pytest.fixture(scope="module")
def model() -> Any:
    """A real classifier: benign (1) when the radius is below 15, malignant (0) otherwise."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    radius = rng.uniform(5, 25, 200)
    texture = rng.uniform(10, 30, 200)
    frame = pd.DataFrame({"mean radius": radius, "mean texture": texture})
    labels = (radius < 15).astype(int)
    return DecisionTreeClassifier(random_state=0).fit(frame, labels)


# --------------------------------------------------------------------------------------------------
# running against a real scikit-learn model
# --------------------------------------------------------------------------------------------------


def test_real_model_passes_suite_with_feature_columns(tmp_path: Path, model: Any) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(MODEL_SUITE, encoding="utf-8")
    suite = load_scenarios(path)

    report = run_scenarios(suite, model.predict, feature_columns=FEATURES)

    assert report.passed, report.summary()
    assert report.failures == ()
    assert report.suite_path == str(path) and report.suite_fingerprint == suite.fingerprint
    benign, malignant, mixed = report.results
    assert benign.reason == "all 3 predictions equal 1"
    assert benign.predictions == (1, 1, 1)
    assert all(type(p) is int for p in benign.predictions)  # numpy int64 made JSON-safe
    assert malignant.reason == "all 2 predictions in [0]"
    assert mixed.reason == "accuracy 1.00 >= required 0.90 (4 of 4 correct)"
    assert all(r.error is None for r in report.results)


def test_real_model_without_feature_columns_fails_by_raising(tmp_path: Path, model: Any) -> None:
    """The extra 'patient_id' column reaches sklearn, which raises: a failure, not a crash."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(MODEL_SUITE, encoding="utf-8")

    report = run_scenarios(load_scenarios(path), model.predict)

    benign = report.results[0]
    assert not benign.passed
    assert benign.reason.startswith("scenario raised ValueError: ")
    assert "patient_id" in benign.reason
    assert benign.error is not None and benign.error.startswith("ValueError: ")
    assert report.results[1].passed  # the other scenarios still ran
    assert not report.passed
    assert [f.name for f in report.failures] == ["typical_benign"]


def test_real_model_failing_expectations(model: Any) -> None:
    suite = suite_of(
        {
            "name": "wrong_class",
            "rows": [{"mean radius": 9.0, "mean texture": 14.0}, {"mean radius": 22.0, "mean texture": 20.0}],
            "expect": {"equals": 1},
        },
        {
            "name": "not_allowed",
            "rows": [{"mean radius": 9.0, "mean texture": 14.0}],
            "expect": {"one_of": [0, 2]},
        },
        {
            "name": "accuracy",
            "rows": [{"mean radius": r, "mean texture": 15.0} for r in (8.0, 9.0, 22.0)],
            "expect": {"min_accuracy": 0.9},
            "labels": [1, 0, 0],
        },
    )

    report = run_scenarios(suite, model.predict, feature_columns=FEATURES)

    wrong, not_allowed, accuracy = report.results
    assert wrong.reason == "prediction 2 of 2 was 0, expected 1"
    assert wrong.predictions == (1, 0)
    assert not_allowed.reason == "prediction 1 of 1 was 1, expected one of [0, 2]"
    assert accuracy.reason == "accuracy 0.67 < required 0.90 (2 of 3 correct)"
    assert not report.passed and len(report.failures) == 3
    assert all(r.error is None for r in report.results)


def test_real_model_probabilities_within_bounds(model: Any) -> None:
    rows = [{"mean radius": r, "mean texture": 15.0} for r in (8.0, 22.0)]
    suite = suite_of(
        {"name": "probability", "rows": rows, "expect": {"within": {"min": 0.0, "max": 1.0}}},
        {"name": "too_confident", "rows": rows, "expect": {"within": {"max": 0.5}}},
    )

    report = run_scenarios(suite, lambda frame: model.predict_proba(frame)[:, 1], feature_columns=FEATURES)

    probability, too_confident = report.results
    assert probability.passed and probability.reason == "all 2 predictions within [0.0, 1.0]"
    assert not too_confident.passed
    assert too_confident.reason == "prediction 1 of 2 was 1.0, expected a finite number <= 0.5"


def test_full_probability_matrix_is_not_a_prediction_per_row(model: Any) -> None:
    suite = suite_of(
        {
            "name": "proba",
            "rows": [{"mean radius": 9.0, "mean texture": 15.0}],
            "expect": {"within": {"min": 0}},
        }
    )
    result = run_scenarios(suite, model.predict_proba, feature_columns=FEATURES).results[0]
    assert not result.passed
    assert result.reason == "predict returned an array of shape (1, 2); expected one prediction per row"


# --------------------------------------------------------------------------------------------------
# running: expectation kinds with plain predict functions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "labels", "answer", "passed", "reason"),
    [
        ({"equals": 1}, None, 1, True, "all 3 predictions equal 1"),
        ({"equals": 1}, None, 1.0, True, "all 3 predictions equal 1"),
        ({"equals": 1}, None, 0, False, "prediction 1 of 3 was 0, expected 1 (3 of 3 predictions failed)"),
        ({"equals": "cat"}, None, "cat", True, "all 3 predictions equal 'cat'"),
        (
            {"equals": 1},
            None,
            "1",
            False,
            "prediction 1 of 3 was '1', expected 1 (3 of 3 predictions failed)",
        ),
        (
            {"equals": 1},
            None,
            True,
            False,
            "prediction 1 of 3 was True, expected 1 (3 of 3 predictions failed)",
        ),
        ({"equals": True}, None, np.bool_(True), True, "all 3 predictions equal True"),
        ({"one_of": [0, 1]}, None, np.int64(1), True, "all 3 predictions in [0, 1]"),
        (
            {"one_of": ["a", "b"]},
            None,
            "c",
            False,
            "prediction 1 of 3 was 'c', expected one of ['a', 'b'] (3 of 3 predictions failed)",
        ),
        ({"within": {"min": 0}}, None, np.float32(0.5), True, "all 3 predictions >= 0.0"),
        (
            {"within": {"min": 0, "max": 1}},
            None,
            -0.25,
            False,
            "prediction 1 of 3 was -0.25, expected a finite number within [0.0, 1.0] "
            "(3 of 3 predictions failed)",
        ),
        (
            {"within": {"min": 0}},
            None,
            "0.5",
            False,
            "prediction 1 of 3 was '0.5', expected a finite number >= 0.0 (3 of 3 predictions failed)",
        ),
        (
            {"within": {"min": 0}},
            None,
            float("inf"),
            False,
            "prediction 1 of 3 was inf, expected a finite number >= 0.0 (3 of 3 predictions failed)",
        ),
        ({"min_accuracy": 0.6}, [1, 1, 0], 1, True, "accuracy 0.67 >= required 0.60 (2 of 3 correct)"),
        ({"min_accuracy": 0.67}, [1, 1, 0], 1, False, "accuracy 0.667 < required 0.670 (2 of 3 correct)"),
        (
            {"min_accuracy": 1},
            [1, 1, 1],
            np.int64(1),
            True,
            "accuracy 1.00 >= required 1.00 (3 of 3 correct)",
        ),
        ({"min_accuracy": 0}, [1, 1, 1], 0, True, "accuracy 0.00 >= required 0.00 (0 of 3 correct)"),
    ],
)
def test_expectation_kinds(
    expect: dict[str, Any], labels: list[Any] | None, answer: Any, passed: bool, reason: str
) -> None:
    entry = scenario(**expect)
    if labels is not None:
        entry["labels"] = labels
    result = run_scenarios(suite_of(entry), constant(answer)).results[0]
    assert (result.passed, result.reason) == (passed, reason)
    assert result.error is None


def test_accuracy_exactly_at_threshold_passes() -> None:
    entry = {
        "name": "s",
        "rows": [{"x": i} for i in range(10)],
        "expect": {"min_accuracy": 0.9},
        "labels": [1] * 9 + [0],
    }
    result = run_scenarios(suite_of(entry), constant(1)).results[0]
    assert result.passed and result.reason == "accuracy 0.90 >= required 0.90 (9 of 10 correct)"


def test_nan_never_satisfies_equals_one_of_or_within() -> None:
    nan = float("nan")
    suite = suite_of(
        scenario("equals", equals=1),
        scenario("one_of", one_of=[0, 1]),
        scenario("within", within={"min": 0, "max": 1}),
    )

    report = run_scenarios(suite, lambda frame: np.array([1.0, nan, 1.0]))

    assert [r.passed for r in report.results] == [False, False, False]
    assert report.results[0].reason == "prediction 2 of 3 was nan, expected 1"
    assert report.results[2].reason == "prediction 2 of 3 was nan, expected a finite number within [0.0, 1.0]"
    assert report.results[1].reason == "prediction 2 of 3 was nan, expected one of [0, 1]"
    # NaN is recorded as null so the report stays strict JSON
    assert report.results[0].predictions == (1.0, None, 1.0)
    json.dumps(report.to_dict(), allow_nan=False)


def test_nan_counts_as_wrong_for_accuracy() -> None:
    entry = {**scenario(min_accuracy=1.0), "labels": [1, 1, 1]}
    result = run_scenarios(suite_of(entry), lambda frame: [1, float("nan"), 1]).results[0]
    assert not result.passed and result.reason == "accuracy 0.67 < required 1.00 (2 of 3 correct)"


def test_missing_values_from_pandas_never_match() -> None:
    suite = suite_of(scenario(equals=1))
    series = pd.Series([1, None, 1], dtype="Int64")
    result = run_scenarios(suite, lambda frame: series).results[0]
    assert not result.passed
    assert result.reason == "prediction 2 of 3 was None, expected 1"
    assert result.predictions == (1, None, 1)


# --------------------------------------------------------------------------------------------------
# running: broken predict functions and inputs
# --------------------------------------------------------------------------------------------------


def test_predict_raising_is_a_failure_and_the_run_continues() -> None:
    calls: list[str] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        calls.append("called")
        if len(calls) == 1:
            raise ValueError("model exploded")
        return [1] * len(frame)

    report = run_scenarios(suite_of(scenario("boom", equals=1), scenario("fine", equals=1)), predict)

    boom, fine = report.results
    assert not boom.passed
    assert boom.reason == "scenario raised ValueError: model exploded"
    assert boom.error == "ValueError: model exploded"
    assert boom.predictions == ()
    assert fine.passed and fine.error is None
    assert not report.passed


def test_predict_raising_without_message() -> None:
    def predict(frame: pd.DataFrame) -> list[int]:
        raise RuntimeError

    result = run_scenarios(suite_of(scenario(equals=1)), predict).results[0]
    assert result.reason == "scenario raised RuntimeError" and not result.passed


def test_keyboard_interrupt_is_not_swallowed() -> None:
    def predict(frame: pd.DataFrame) -> list[int]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenarios(suite_of(scenario(equals=1)), predict)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ([1, 1], "predict returned 2 prediction(s) for 3 row(s)"),
        ([1, 1, 1, 1], "predict returned 4 prediction(s) for 3 row(s)"),
        ([], "predict returned 0 prediction(s) for 3 row(s)"),
        (None, "predict returned None; expected one prediction per row"),
        (1, "predict returned int; expected a sequence with one prediction per row"),
        ("111", "predict returned str; expected a sequence with one prediction per row"),
        ({"a": 1}, "predict returned dict; expected a sequence with one prediction per row"),
        (np.int64(1), "predict returned int64; expected a sequence with one prediction per row"),
        (
            pd.DataFrame({"a": [1, 1, 1], "b": [0, 0, 0]}),
            "predict returned a DataFrame with 2 columns; expected one prediction per row",
        ),
        ([1, [1], 1], "prediction 2 of 3 has unsupported type list; expected a string, number or boolean"),
    ],
)
def test_unusable_output_is_a_failure(output: Any, reason: str) -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: output).results[0]
    assert not result.passed
    assert result.reason == reason
    assert result.error == reason


def test_wrong_length_records_what_came_back() -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: np.array([1, 1])).results[0]
    assert result.predictions == (1, 1) and not result.passed


@pytest.mark.parametrize(
    "output",
    [
        np.array([1, 1, 1]),
        np.array([[1], [1], [1]]),
        pd.Series([1, 1, 1], index=[10, 20, 30]),
        pd.DataFrame({"prediction": [1, 1, 1]}),
        (1, 1, 1),
        (x for x in [1, 1, 1]),
    ],
    ids=["array", "column-vector", "series", "one-column-frame", "tuple", "generator"],
)
def test_accepted_output_shapes(output: Any) -> None:
    result = run_scenarios(suite_of(scenario(equals=1)), lambda frame: output).results[0]
    assert result.passed, result.reason
    assert result.predictions == (1, 1, 1)


def test_missing_feature_column_fails_only_that_scenario() -> None:
    suite = suite_of(
        {"name": "incomplete", "rows": [{"a": 1, "b": 2}, {"a": 1}], "expect": {"equals": 1}},
        {"name": "complete", "rows": [{"b": 2, "a": 1, "extra": "x"}], "expect": {"equals": 1}},
    )
    seen: list[list[str]] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        seen.append(list(frame.columns))
        return [1] * len(frame)

    report = run_scenarios(suite, predict, feature_columns=["a", "b"])

    incomplete, complete = report.results
    assert not incomplete.passed
    assert incomplete.reason == "row 2 of 2 is missing feature column 'b'"
    assert incomplete.error == incomplete.reason
    assert complete.passed
    assert seen == [["a", "b"]]  # predict never saw the incomplete scenario; extra column dropped


def test_missing_several_feature_columns_are_all_named() -> None:
    suite = suite_of({"name": "s", "rows": [{"a": 1}], "expect": {"equals": 1}})
    result = run_scenarios(suite, constant(1), feature_columns=["a", "b", "c"]).results[0]
    assert result.reason == "row 1 of 1 is missing feature columns ['b', 'c']"


def test_frame_without_feature_columns_keeps_row_columns() -> None:
    frames: list[pd.DataFrame] = []

    def predict(frame: pd.DataFrame) -> list[int]:
        frames.append(frame)
        return [1] * len(frame)

    run_scenarios(
        suite_of({"name": "s", "rows": [{"b": 1, "a": 2.5}, {"b": 3, "a": None}], "expect": {"equals": 1}}),
        predict,
    )
    assert list(frames[0].columns) == ["b", "a"]
    assert frames[0]["a"].isna().tolist() == [False, True]


@pytest.mark.parametrize(
    ("columns", "error"),
    [("mean radius", TypeError), ([], ValueError), (["a", "a"], ValueError), (["a", 1], TypeError)],
)
def test_bad_feature_columns_are_caller_errors(columns: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        run_scenarios(suite_of(scenario(equals=1)), constant(1), feature_columns=columns)


def test_predict_must_be_callable() -> None:
    with pytest.raises(TypeError, match="predict must be callable"):
        run_scenarios(suite_of(scenario(equals=1)), "model.pkl")  # type: ignore[arg-type]


def test_recorded_predictions_are_capped() -> None:
    result = run_scenarios(suite_of(scenario(rows=50, equals=1)), constant(np.int64(1))).results[0]
    assert result.passed and result.reason == "all 50 predictions equal 1"
    assert len(result.predictions) == MAX_RECORDED_PREDICTIONS


def test_programmatic_min_accuracy_without_labels_fails_closed() -> None:
    bad = Scenario(name="s", description="", rows=({"x": 1},), expectation=MinAccuracy(0.5), labels=None)
    suite = ScenarioSuite(path="inline", scenarios=(bad,), fingerprint="f")
    result = run_scenarios(suite, constant(1)).results[0]
    assert not result.passed and result.error == "min_accuracy needs exactly one label per row"


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def _mixed_report() -> ScenarioRunReport:
    def predict(frame: pd.DataFrame) -> Sequence[Any]:
        if "boom" in frame.columns:
            raise ValueError("no")
        return np.array([1.0, float("nan"), 1.0])[: len(frame)]

    suite = suite_of(
        scenario("ok", rows=1, equals=1),
        scenario("nan", rows=3, equals=1),
        {"name": "raises", "rows": [{"boom": 1}], "expect": {"equals": 1}},
    )
    return run_scenarios(suite, predict)


def test_report_round_trips_through_json() -> None:
    report = _mixed_report()
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))

    assert data["passed"] is False
    assert [r["name"] for r in data["results"]] == ["ok", "nan", "raises"]
    assert ScenarioRunReport.from_dict(data) == report


def test_report_passed_and_failures() -> None:
    report = _mixed_report()
    assert not report.passed
    assert [f.name for f in report.failures] == ["nan", "raises"]
    empty = ScenarioRunReport(suite_path="x", suite_fingerprint="f", results=())
    assert not empty.passed  # nothing ran: never a pass
    assert "FAILED (no scenarios were run)" in empty.summary()


def test_report_summary_is_readable() -> None:
    summary = _mixed_report().summary()
    lines = summary.splitlines()
    assert lines[0] == "Scenarios FAILED (2 of 3 scenarios failed)"
    assert lines[1] == "suite: inline.yaml (sha256 000000000000)"
    assert lines[2] == "  PASS ok: all 1 prediction equal 1"
    assert lines[3] == "  FAIL nan: prediction 2 of 3 was nan, expected 1"
    assert lines[4] == "  FAIL raises: scenario raised ValueError: no"


def test_report_from_dict_rejects_contradictions_and_garbage() -> None:
    data = _mixed_report().to_dict()
    with pytest.raises(ValueError, match="says passed=True"):
        ScenarioRunReport.from_dict({**data, "passed": True})
    with pytest.raises(ValueError, match="missing key"):
        ScenarioRunReport.from_dict({"suite_path": "x"})
    with pytest.raises(ValueError, match="'passed' must be a boolean"):
        ScenarioRunReport.from_dict({**data, "results": [{"name": "a", "passed": "yes", "reason": ""}]})
    with pytest.raises(ValueError, match="cannot carry an error"):
        ScenarioResult.from_dict({"name": "a", "passed": True, "reason": "", "error": "boom"})
    with pytest.raises(ValueError, match="list of scalars"):
        ScenarioResult.from_dict({"name": "a", "passed": False, "reason": "", "predictions": [[1]]})
