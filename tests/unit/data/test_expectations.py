"""Tests for airflow_ml_provider.data.expectations against real Great Expectations (no mocks).

The cases pin the GX behaviours we guard against: suites that lose expectations on load, empty suites
that validate as success, and pandas 3 string columns.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.data.expectations import (
    DataExpectationError,
    ExpectationReport,
    ExpectationResult,
    ExpectationSuiteError,
    load_suite,
    validate_frame,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def _exp(expectation_type: str, /, **kwargs: Any) -> dict[str, Any]:
    """One expectation in GX 1.x suite JSON form."""
    return {"type": expectation_type, "kwargs": kwargs}


def _write_suite(tmp_path: Path, expectations: list[dict[str, Any]], name: str = "test_suite") -> Path:
    """Write a suite JSON file the way users keep them in their repos."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return path


@pytest.fixture
def frame() -> pd.DataFrame:
    """Small clean frame with a float, an int and a pandas-3 string column."""
    return pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0, 4.0, 5.0],
            "label": [0, 1, 0, 1, 1],
            "name": ["x", "y", "z", "w", "v"],
        }
    )


@pytest.fixture
def passing_suite(tmp_path: Path) -> Path:
    """A suite the ``frame`` fixture satisfies."""
    return _write_suite(
        tmp_path,
        [
            _exp("expect_column_values_to_not_be_null", column="a"),
            _exp("expect_column_values_to_be_between", column="a", min_value=0, max_value=10),
            _exp("expect_column_values_to_be_in_set", column="label", value_set=[0, 1]),
            _exp("expect_table_row_count_to_be_between", min_value=1, max_value=100),
            _exp("expect_column_mean_to_be_between", column="a", min_value=2, max_value=4),
        ],
        name="passing",
    )


def test_passing_suite(frame: pd.DataFrame, passing_suite: Path) -> None:
    report = validate_frame(frame, passing_suite, "memory://frame")
    assert report.success
    assert report.failures == ()
    assert report.failure_summary() == ""
    assert report.suite_name == "passing"
    assert report.suite_path == str(passing_suite)
    assert report.dataset == "memory://frame"
    # One result per expectation, in the suite's order (GX itself reorders them).
    assert [r.expectation_type for r in report.results] == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_table_row_count_to_be_between",
        "expect_column_mean_to_be_between",
    ]
    first = report.results[0]
    assert first.column == "a"
    assert first.kwargs == {"column": "a"}  # no batch_id
    assert first.observed["element_count"] == 5
    assert first.observed["unexpected_count"] == 0
    assert report.results[3].column is None
    assert report.results[4].observed["observed_value"] == 3.0


def test_nulls_fail_and_error_names_expectation_and_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, np.nan, 5.0, np.nan, 7.0]})
    suite = _write_suite(tmp_path, [_exp("expect_column_values_to_not_be_null", column="a")], name="nn")

    report = validate_frame(df, suite, "s3://bucket/raw.parquet")  # never raises for data failures
    assert not report.success
    (failure,) = report.failures
    assert failure.expectation_type == "expect_column_values_to_not_be_null"
    assert failure.column == "a"
    assert failure.observed["unexpected_count"] == 3
    assert failure.observed["element_count"] == 7
    assert failure.exception is None

    error = DataExpectationError(report)  # what FeaturizeOperator raises once the report is recorded
    message = str(error)
    assert message.startswith(f"Dataset s3://bucket/raw.parquet failed expectation suite nn ({suite}): ")
    assert "expect_column_values_to_not_be_null on column 'a' failed: 3 of 7 values unexpected" in message
    assert error.report.failures[0].column == "a"
    assert isinstance(error, ValueError)


def test_missing_column_surfaces_expectation_exception(frame: pd.DataFrame, tmp_path: Path) -> None:
    suite = _write_suite(
        tmp_path,
        [
            _exp("expect_column_values_to_not_be_null", column="a"),
            _exp("expect_column_values_to_not_be_null", column="no_such_column"),
        ],
    )
    report = validate_frame(frame, suite, "frame")
    assert not report.success
    (failure,) = report.failures
    assert failure.column == "no_such_column"
    assert failure.exception is not None and "no_such_column" in failure.exception
    assert "no_such_column" in report.failure_summary()
    assert "raised an error" in report.failure_summary()
    assert "no_such_column" in str(DataExpectationError(report))


def test_unknown_expectation_type_is_suite_error(tmp_path: Path) -> None:
    suite = _write_suite(
        tmp_path,
        [
            _exp("expect_column_values_to_not_be_null", column="a"),
            _exp("expect_column_values_to_be_wonderful", column="a"),
        ],
    )
    with pytest.raises(ExpectationSuiteError) as info:
        load_suite(suite)
    assert "expect_column_values_to_be_wonderful" in str(info.value)
    assert str(suite) in str(info.value)
    # validate_frame must refuse too, rather than validate the one surviving expectation.
    with pytest.raises(ExpectationSuiteError, match="expect_column_values_to_be_wonderful"):
        validate_frame(pd.DataFrame({"a": [1]}), suite, "frame")


def test_invalid_kwargs_are_suite_error(tmp_path: Path) -> None:
    suite = _write_suite(tmp_path, [_exp("expect_column_values_to_be_between", column="a")])
    with pytest.raises(ExpectationSuiteError, match="expect_column_values_to_be_between"):
        load_suite(suite)


def test_empty_suite_is_suite_error(tmp_path: Path) -> None:
    suite = _write_suite(tmp_path, [])
    with pytest.raises(ExpectationSuiteError, match="no expectations") as info:
        load_suite(suite)
    assert str(suite) in str(info.value)
    with pytest.raises(ExpectationSuiteError):
        validate_frame(pd.DataFrame({"a": [1]}), suite, "frame")


def test_missing_file_is_suite_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ExpectationSuiteError, match="does not exist") as info:
        load_suite(missing)
    assert str(missing) in str(info.value)


def test_invalid_json_is_suite_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "expectations": [', encoding="utf-8")
    with pytest.raises(ExpectationSuiteError, match="not valid JSON") as info:
        load_suite(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"expectations": []}', "'name'"),
        ('{"name": "x", "expectations": {}}', "must be a list"),
        (
            '{"expectation_suite_name": "x", "expectations": '
            '[{"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}]}',
            "0.x",
        ),
        (
            '{"name": "x", "expectations": '
            '[{"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}]}',
            "expectation_type",
        ),
    ],
)
def test_not_a_gx_suite_is_suite_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ExpectationSuiteError, match=match):
        load_suite(path)


def test_suite_written_by_gx_round_trips(frame: pd.DataFrame, tmp_path: Path) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    stored = context.suites.add(gx.ExpectationSuite(name="written_by_gx"))  # gets ids, like a real store
    stored.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="a", mostly=0.9, notes="why"))
    stored.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    stored.add_expectation(gxe.ExpectColumnValuesToBeOfType(column="name", type_="str"))
    path = tmp_path / "written_by_gx.json"
    path.write_text(json.dumps(stored.to_json_dict()), encoding="utf-8")

    loaded = load_suite(path)
    assert loaded.name == "written_by_gx"
    assert [e.expectation_type for e in loaded.expectations] == [
        e.expectation_type for e in stored.expectations
    ]
    report = validate_frame(frame, path, "frame")
    assert report.success and len(report.results) == 3
    assert report.results[0].kwargs == {"column": "a", "mostly": 0.9}


def test_report_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, 30.0, np.inf], "label": [0, 1, 2, 7]})
    suite = _write_suite(
        tmp_path,
        [
            _exp("expect_column_values_to_not_be_null", column="a"),
            _exp("expect_column_values_to_be_in_set", column="label", value_set=[0, 1]),
            _exp("expect_column_max_to_be_between", column="a", min_value=0, max_value=10),
            _exp("expect_column_values_to_not_be_null", column="missing"),
        ],
    )
    report = validate_frame(df, suite, "frame")
    assert not report.success
    as_dict = report.to_dict()
    text = json.dumps(as_dict, allow_nan=False)  # strict JSON: facets and XCom must accept it
    again = ExpectationReport.from_dict(json.loads(text))
    assert again == report
    assert again.to_dict() == as_dict
    assert again.failure_summary() == report.failure_summary()
    in_set = next(r for r in report.results if r.expectation_type == "expect_column_values_to_be_in_set")
    assert in_set.observed["partial_unexpected_list"] == [2, 7]
    assert "2 of 4 values unexpected (e.g. [2, 7])" in report.failure_summary()


def test_partial_unexpected_list_truncated(tmp_path: Path) -> None:
    df = pd.DataFrame({"label": list(range(50))})
    suite = _write_suite(tmp_path, [_exp("expect_column_values_to_be_in_set", column="label", value_set=[0])])
    (failure,) = validate_frame(df, suite, "frame").failures
    assert failure.observed["unexpected_count"] == 49
    assert len(failure.observed["partial_unexpected_list"]) == 5


def test_table_level_failure_summary(frame: pd.DataFrame, tmp_path: Path) -> None:
    suite = _write_suite(tmp_path, [_exp("expect_table_row_count_to_be_between", min_value=10)])
    summary = validate_frame(frame, suite, "frame").failure_summary()
    assert summary.startswith("expect_table_row_count_to_be_between failed: observed value 5")
    assert "min_value=10" in summary


def test_string_column_of_type_str(frame: pd.DataFrame, tmp_path: Path) -> None:
    """pandas 3 infers the ``str`` dtype; ExpectColumnValuesToBeOfType("str") is the check that works."""
    assert str(frame["name"].dtype) == "str"
    suite = _write_suite(tmp_path, [_exp("expect_column_values_to_be_of_type", column="name", type_="str")])
    report = validate_frame(frame, suite, "frame")
    assert report.success
    bad = _write_suite(
        tmp_path, [_exp("expect_column_values_to_be_of_type", column="a", type_="str")], name="bad"
    )
    (failure,) = validate_frame(frame, bad, "frame").failures
    assert failure.column == "a"


def test_many_calls_in_one_process(frame: pd.DataFrame, passing_suite: Path) -> None:
    reports = [validate_frame(frame, passing_suite, f"frame-{i}") for i in range(3)]
    assert all(r.success for r in reports)
    assert [r.dataset for r in reports] == ["frame-0", "frame-1", "frame-2"]


def test_data_expectation_error_pickles(tmp_path: Path) -> None:
    result = ExpectationResult(
        expectation_type="expect_column_values_to_not_be_null",
        column="a",
        success=False,
        kwargs={"column": "a"},
        observed={"element_count": 3, "unexpected_count": 1, "partial_unexpected_list": [None]},
        exception=None,
    )
    report = ExpectationReport("s", "/x/s.json", "d", False, (result,))
    error = pickle.loads(pickle.dumps(DataExpectationError(report)))
    assert error.report == report
    assert "1 of 3 values unexpected" in str(error)


def test_not_a_dataframe(passing_suite: Path) -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        validate_frame([1, 2, 3], passing_suite, "list")  # type: ignore[arg-type]


def test_import_does_not_load_gx_or_pandas() -> None:
    code = (
        "import airflow_ml_provider.data.expectations, sys; "
        "assert 'great_expectations' not in sys.modules and 'pandas' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)
