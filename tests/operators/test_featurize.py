"""FeaturizeOperator error paths, against the real MLflow store, Great Expectations and files.

Each failure must (1) raise an error of the right type whose message names the dataset, column,
expectation or parameter at fault, (2) leave no features dataset (and no ``.incomplete-*`` temp
file) under the artifact root, and (3) mark the MLflow step run FAILED with a step record whose
status is ``failed`` and whose error is the one raised.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.data.datasets import DatasetError
from airflow_ml_provider.data.expectations import DataExpectationError, ExpectationSuiteError
from airflow_ml_provider.data.fingerprint import fingerprint_file
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.records.environment import callable_name
from tests.example import transform
from tests.operators._support import (
    artifact_root,
    assert_nothing_written,
    assert_step_failed,
    assert_step_succeeded,
    snapshot,
)
from tests.operators.conftest import FEATURES_SUITE, RAW_SUITE
from tests.support import make_context, read_record

DAG = "ops_featurize"


def features_dir() -> Path:
    return artifact_root() / "features"


def featurize(raw_uri: str | Path, **kwargs: Any) -> FeaturizeOperator:
    kwargs.setdefault("transform", transform)
    return FeaturizeOperator(task_id="featurize", raw_uri=str(raw_uri), **kwargs)


def run_failing(op: FeaturizeOperator, error_type: type[BaseException]) -> tuple[dict[str, Any], Any]:
    """Execute, expect ``error_type``, and check no features were written; returns (context, excinfo)."""
    before = snapshot(features_dir())
    context = make_context(DAG, op.task_id)
    with pytest.raises(error_type) as excinfo:
        op.execute(context)
    assert_nothing_written(features_dir(), before)
    return context, excinfo


# --- user-code helpers (module level so that callable_name names them) ---------------------------


def transform_to_list(raw: Any) -> Any:
    return raw.to_dict(orient="records")


def transform_with_bad_target(raw: Any) -> Any:
    features = transform(raw)
    features.loc[features.index[:3], "target"] = 7  # violates expect_column_values_to_be_in_set [0, 1]
    return features


def transform_unwritable(raw: Any) -> Any:
    """A frame pandas holds happily but Parquet cannot store: one column mixes numbers and text."""
    features = transform(raw)
    features["mixed_bag"] = [1 if i % 2 else "one" for i in range(len(features))]
    return features


calls: list[str] = []


def transform_spy(raw: Any) -> Any:
    calls.append("called")
    return transform(raw)


# --- reading the raw dataset ---------------------------------------------------------------------


def test_missing_raw_file(tmp_path: Path, client: Any) -> None:
    raw = tmp_path / "nowhere" / "raw.parquet"
    context, excinfo = run_failing(featurize(raw, raw_suite=str(RAW_SUITE)), DatasetError)
    message = str(excinfo.value)
    assert "raw dataset" in message and str(raw) in message and "does not exist" in message
    record = assert_step_failed(client, context, excinfo.value, str(raw))
    assert record.step == "featurize" and record.outputs == []


def test_unsupported_suffix(tmp_path: Path, client: Any) -> None:
    raw = tmp_path / "raw.xlsx"
    raw.write_bytes(b"not a spreadsheet either")
    context, excinfo = run_failing(featurize(raw), DatasetError)
    message = str(excinfo.value)
    assert str(raw) in message and "'.xlsx'" in message and ".parquet or .csv" in message
    assert_step_failed(client, context, excinfo.value, str(raw), ".xlsx")


def test_unreadable_parquet(tmp_path: Path, client: Any) -> None:
    raw = tmp_path / "x.parquet"
    raw.write_bytes(b"\x00garbage, not parquet\xff" * 10)
    context, excinfo = run_failing(featurize(raw), DatasetError)
    message = str(excinfo.value)
    assert str(raw) in message and "could not be read as parquet" in message
    assert excinfo.value.__cause__ is not None  # the reader's own error is kept
    assert_step_failed(client, context, excinfo.value, str(raw), "parquet")


# --- expectations on the raw data ----------------------------------------------------------------


def test_raw_suite_violated_by_nulls(tmp_path: Path, raw_frame: Any, client: Any) -> None:
    bad = raw_frame.copy()
    bad.loc[[3, 7, 11], "mean radius"] = float("nan")
    raw = tmp_path / "raw_with_nulls.parquet"
    bad.to_parquet(raw, index=False)
    calls.clear()

    context, excinfo = run_failing(
        featurize(raw, transform=transform_spy, raw_suite=str(RAW_SUITE)), DataExpectationError
    )

    message = str(excinfo.value)
    assert "expect_column_values_to_not_be_null" in message and "'mean radius'" in message
    assert "3 of 569" in message and "breast_cancer_raw" in message and str(raw) in message
    failed = excinfo.value.report.failures
    assert [(f.expectation_type, f.column) for f in failed] == [("expect_column_values_to_not_be_null", "mean radius")]
    assert calls == [], "the transform ran on data that failed its expectations"
    record = assert_step_failed(client, context, excinfo.value, "expect_column_values_to_not_be_null")
    # the evidence is recorded even though the step failed
    (check,) = record.results.expectations
    assert check.role == "raw" and check.report.success is False
    assert record.inputs[0]["role"] == "raw" and record.inputs[0]["fingerprint"] == fingerprint_file(raw)


def test_raw_missing_column_per_suite(tmp_path: Path, raw_frame: Any, client: Any) -> None:
    raw = tmp_path / "raw_missing_column.parquet"
    raw_frame.drop(columns=["mean texture"]).to_parquet(raw, index=False)

    context, excinfo = run_failing(featurize(raw, raw_suite=str(RAW_SUITE)), DataExpectationError)

    message = str(excinfo.value)
    assert "expect_table_columns_to_match_set" in message
    assert "'mean texture'" in message and "does not exist" in message
    failed = {(f.expectation_type, f.column) for f in excinfo.value.report.failures}
    assert ("expect_table_columns_to_match_set", None) in failed
    assert ("expect_column_values_to_not_be_null", "mean texture") in failed
    assert_step_failed(client, context, excinfo.value, "mean texture")


def test_suite_with_unknown_expectation_type(tmp_path: Path, raw_data: Path, client: Any) -> None:
    suite = json.loads(RAW_SUITE.read_text())
    suite["expectations"].append({"type": "expect_column_values_to_be_purple", "kwargs": {"column": "target"}})
    suite_file = tmp_path / "lossy_suite.json"
    suite_file.write_text(json.dumps(suite))

    context, excinfo = run_failing(featurize(raw_data, raw_suite=str(suite_file)), ExpectationSuiteError)

    message = str(excinfo.value)
    assert str(suite_file) in message and "expect_column_values_to_be_purple" in message
    assert_step_failed(client, context, excinfo.value, "expect_column_values_to_be_purple")


# --- the user's transform ------------------------------------------------------------------------


def test_transform_returning_a_list(raw_data: Path, client: Any) -> None:
    context, excinfo = run_failing(featurize(raw_data, transform=transform_to_list), TypeError)
    message = str(excinfo.value)
    assert callable_name(transform_to_list) in message and "returned list" in message
    assert "DataFrame" in message
    assert_step_failed(client, context, excinfo.value, "transform_to_list", "list")


def test_transform_params_not_matching_signature_fail_when_the_dag_is_parsed(raw_data: Path) -> None:
    with pytest.raises(TypeError) as excinfo:
        featurize(raw_data, transform_params={"clip_quantile": 0.99, "clip_quantil": 0.9})
    message = str(excinfo.value)
    assert "'clip_quantil'" in message and callable_name(transform) in message
    assert str(inspect.signature(transform)) in message


def test_transform_params_changed_at_run_time_are_checked_at_run_time(raw_data: Path, client: Any) -> None:
    op = featurize(raw_data, transform_params={"clip_quantile": 0.99})
    op.apply_overrides({"clip_quantil": 0.9})  # as a reproduction's --set would
    context, excinfo = run_failing(op, TypeError)
    assert "'clip_quantil'" in str(excinfo.value) and callable_name(transform) in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "clip_quantil")


@pytest.mark.parametrize("value", ["breast_cancer.pipeline.transform", None, 42])
def test_non_callable_transform_rejected_at_construction(value: Any) -> None:
    with pytest.raises(TypeError) as excinfo:
        FeaturizeOperator(task_id="featurize", raw_uri="raw.parquet", transform=value)
    message = str(excinfo.value)
    assert "transform must be a callable" in message and type(value).__name__ in message


def test_features_that_cannot_be_stored_leave_no_partial_file(raw_data: Path, client: Any) -> None:
    """write_frame fails inside pyarrow: the temp file it had created must be gone."""
    import pyarrow as pa

    context, excinfo = run_failing(featurize(raw_data, transform=transform_unwritable), pa.ArrowException)
    assert "mixed_bag" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, "mixed_bag")


# --- expectations on the features ---------------------------------------------------------------


def test_features_suite_violated(raw_data: Path, client: Any) -> None:
    op = featurize(
        raw_data,
        transform=transform_with_bad_target,
        raw_suite=str(RAW_SUITE),
        features_suite=str(FEATURES_SUITE),
    )
    context, excinfo = run_failing(op, DataExpectationError)

    message = str(excinfo.value)
    assert "breast_cancer_features" in message and f"features of {raw_data.as_uri()}" in message
    assert "expect_column_values_to_be_in_set on column 'target'" in message and "3 of 569" in message
    record = assert_step_failed(client, context, excinfo.value, "expect_column_values_to_be_in_set")
    roles = [(c.role, c.report.success) for c in record.results.expectations]
    assert roles == [("raw", True), ("features", False)]
    assert record.outputs == []  # no features dataset is recorded


# --- the same operator succeeding, so that the checks above are meaningful ------------------------


def test_success_writes_content_addressed_features(featurized: dict[str, Any], client: Any) -> None:
    result = featurized["result"]
    path = Path(result["uri"].removeprefix("file://"))
    assert path.parent == features_dir()
    assert path.name == result["fingerprint"].split(":", 1)[1] + ".parquet"
    assert fingerprint_file(path) == result["fingerprint"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".incomplete-")]
    record = assert_step_succeeded(client, featurized["context"])
    assert record.mlflow_run_id == result["mlflow_run_id"]
    assert [o["fingerprint"] for o in record.outputs] == [result["fingerprint"]]
    assert [(c.role, c.report.success) for c in record.results.expectations] == [
        ("raw", True),
        ("features", True),
    ]
    assert read_record(client, result["mlflow_run_id"]).status == "success"


def test_raw_input_is_logged_to_mlflow_with_our_full_content_fingerprint(
    featurized: dict[str, Any], client: Any
) -> None:
    """MLflow's own dataset digest covers only the first 10,000 rows; the input carries ours."""
    run = client.get_run(featurized["result"]["mlflow_run_id"])
    raw_fingerprint = read_record(client, run.info.run_id).inputs[0]["fingerprint"]
    (dataset_input,) = run.inputs.dataset_inputs
    assert json.loads(dataset_input.dataset.profile)["fingerprint"] == raw_fingerprint
    assert raw_fingerprint.split(":", 1)[1].startswith(dataset_input.dataset.digest)
    assert [t.value for t in dataset_input.tags if t.key == "mlflow.data.context"] == ["raw"]
