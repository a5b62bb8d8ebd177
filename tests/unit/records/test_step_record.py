"""The typed step record: one writer, one strict reader (pure: no MLflow, no Airflow)."""

from __future__ import annotations

import copy
import json
import math
import types
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.data.expectations import ExpectationReport, ExpectationResult
from airflow_ml_provider.gate import Check, Subject, Verdict
from airflow_ml_provider.monitoring import DriftReport, FeatureDrift
from airflow_ml_provider.monitoring.shadow import ShadowBatch, ShadowSummary, compare_predictions
from airflow_ml_provider.parsing import NaiveTimeError, parse_time
from airflow_ml_provider.promotion.rule import Mode, Outcome, PromotionResult
from airflow_ml_provider.records.step_record import (
    RESULT_TYPES,
    AirflowIds,
    ChampionScore,
    DriftResult,
    EvaluateResult,
    FeaturizeResult,
    GateResult,
    PredictResult,
    RecordedModel,
    RecordError,
    ShadowResult,
    SimulateResult,
    StepRecord,
    TrainResult,
    read_step_record,
)
from airflow_ml_provider.records.tags import RECORD_ARTIFACT_PATH
from airflow_ml_provider.scenarios.runner import ScenarioResult, ScenarioRunReport

MODEL = RecordedModel("clf", "3", "models:/clf/3", "blake3:ab")
REPORT = ExpectationReport(
    suite_name="raw",
    suite_path="/s.json",
    dataset="file:///raw.parquet",
    success=False,
    results=(
        ExpectationResult("expect_column_values_to_not_be_null", "age", False, {"column": "age"}, {}),
        ExpectationResult("expect_table_row_count_to_be_between", None, True, {"min_value": 1}, {}),
    ),
)
VERDICT = Verdict(
    Subject("clf", "3", "blake3:ab"),
    False,
    (Check("metric:accuracy:threshold", True, "0.9 >= 0.8"), Check("scenario:b", False, "expected 0")),
    parse_time("2026-01-01T00:00:00Z", "decided_at"),
    {},
)
RESULTS: dict[str, Any] = {
    "featurize": FeaturizeResult().with_report("raw", REPORT).with_report("features", REPORT),
    "train": TrainResult("clf", {"C": 1.0}, 42),
    "evaluate": EvaluateResult(
        "classification", {"accuracy": 0.9, "roc_auc": math.inf}, ChampionScore("2", {"accuracy": 0.8}), "blake3:h"
    ),
    "simulate": SimulateResult(
        ScenarioRunReport(
            "s.yaml", "sha256:1", (ScenarioResult("a", True, "ok", (1,)), ScenarioResult("b", False, "x"))
        )
    ),
    "gate": GateResult(VERDICT),
    "promote": PromotionResult(
        Mode.PROMOTE, Outcome.PROMOTED, "clf", "champion", "3", "2", "3", "newer", "r1", "2026-01-01T00:00:00+00:00",
        "airflow:d/x/promote#1", "models:/clf/3",
    ),
    "rollback": PromotionResult(
        Mode.ROLLBACK, Outcome.RESTORED, "clf", "champion", "2", "3", "2", "back", "r1", "2026-01-01T00:00:00+00:00",
        "cli:me@host",
    ),
    "predict": PredictResult(10, "3", "champion", 1),
    "drift": DriftResult(
        DriftReport(
            "drift",
            {
                "age": FeatureDrift("age", "numeric", "psi+ks", 0.4, 0.2, 1e-9, 3e-9, True, "PSI 0.4 >= 0.2 and ..."),
                "plan": FeatureDrift("plan", "schema", "schema", math.inf, 0.0, None, None, True, "missing"),
            },
            ("column 'plan' is missing",),
            400,
            500,
        )
    ),
    "shadow": ShadowResult(
        ShadowSummary(
            "replay", "compared", "clf", "2", "blake3:c", "models:/clf/3", "3", "blake3:ab",
            (ShadowBatch("file:///b.parquet", "blake3:b", 4, compare_predictions(
                "classification", [0, 1, 1], [0, 1, 0], prediction_ids=["a", "b", "c"], row_indexes=[0, 1, 3]
            )),),
            None,
        )
    ),
}


def record(step: str = "evaluate", **fields: Any) -> StepRecord:
    defaults: dict[str, Any] = {
        "inputs": [{"role": "holdout", "uri": "file:///h.parquet", "fingerprint": "blake3:h"}],
        "params": {"task": "classification"},
        "model": MODEL,
        "results": RESULTS.get(step),
        "status": "success",
        "recorded_at": "2026-01-01T00:00:01+00:00",
    }
    airflow = AirflowIds("retrain", "manual__1", step, 1, -1)
    return StepRecord(step=step, mlflow_run_id="run-1", airflow=airflow, **{**defaults, **fields})


def as_json(rec: StepRecord) -> dict[str, Any]:
    """What MLflow's log_dict writes and the reader gets back."""
    return json.loads(json.dumps(rec.to_dict()))


@pytest.mark.parametrize("step", sorted(RESULT_TYPES))
def test_every_step_kind_round_trips_through_json(step: str) -> None:
    original = record(step)
    again = StepRecord.from_dict(as_json(original))
    assert again == original
    assert isinstance(again.results, RESULT_TYPES[step])


def test_the_json_shape_is_the_untyped_one() -> None:
    data = as_json(record("train", code="retrain.py:train"))
    assert list(data) == [
        "step", "mlflow_run_id", "airflow", "inputs", "outputs", "params", "code", "code_identity", "environment",
        "model", "results", "status", "returned", "error", "resources", "recorded_at", "schema_version",
    ]
    assert data["schema_version"] == 1
    assert data["airflow"] == {"dag_id": "retrain", "run_id": "manual__1", "task_id": "train", "try_number": 1,
                               "map_index": -1}
    assert data["model"] == {"name": "clf", "version": "3", "uri": "models:/clf/3", "fingerprint": "blake3:ab"}
    assert data["results"] == {"registered_model_name": "clf", "hyperparameters": {"C": 1.0}, "seed": 42}
    featurize = as_json(record("featurize"))["results"]["expectations"]
    assert [r["role"] for r in featurize] == ["raw", "features"] and featurize[0]["suite_name"] == "raw"
    assert as_json(record("evaluate"))["results"]["champion"] == {"version": "2", "metrics": {"accuracy": 0.8}}
    assert as_json(record("predict", results=None))["results"] == {}  # no result yet: as before


def test_a_step_without_results_reads_back_as_none() -> None:
    rec = record("evaluate", results=None, status="failed", error="ValueError: boom")
    assert StepRecord.from_dict(as_json(rec)).results is None


def test_non_finite_metrics_survive() -> None:
    metrics = StepRecord.from_dict(as_json(record("evaluate"))).results.metrics
    assert metrics["roc_auc"] == math.inf
    data = as_json(record("evaluate"))
    data["results"]["metrics"]["accuracy"] = "NaN"  # strict JSON writers spell it so
    assert math.isnan(StepRecord.from_dict(data).results.metrics["accuracy"])


# --- strict loading -------------------------------------------------------------------------------------------


def refused(data: Any, run_id: str | None = None) -> RecordError:
    with pytest.raises(RecordError) as excinfo:
        StepRecord.from_dict(data, run_id)
    error = excinfo.value
    assert str(error).endswith("run the step that wrote it again to record it anew.")
    return error


def test_an_unknown_key_is_refused_naming_run_and_key() -> None:
    data = as_json(record())
    data["resluts"] = {}
    error = refused(data)
    assert error.run_id == "run-1"
    assert "step record of MLflow run run-1 does not parse: record has unknown keys 'resluts'" in str(error)
    nested = as_json(record())
    nested["results"]["champion"]["metric"] = {}
    assert "results.champion has unknown keys 'metric'" in str(refused(nested))


def test_a_wrong_type_is_refused_naming_the_field() -> None:
    data = as_json(record())
    data["airflow"]["try_number"] = "1"
    error = refused(data, "given-run")
    assert error.run_id == "given-run" and error.field == "airflow.try_number"
    assert "airflow.try_number must be an integer, got '1'" in str(error)
    success = as_json(record("featurize"))
    success["results"]["expectations"][0]["success"] = "false"
    assert "results.expectations[0]: expectation report success must be a bool" in str(refused(success))
    verdict = as_json(record("gate"))
    verdict["results"]["verdict"]["passed"] = True  # claims a pass over a failed check
    assert "results.verdict: inconsistent verdict" in str(refused(verdict))


def test_a_missing_field_is_refused() -> None:
    data = as_json(record())
    del data["status"]
    assert "record is missing 'status'" in str(refused(data))
    report = as_json(record("featurize"))
    del report["results"]["expectations"][1]["suite_name"]  # once read back as the text "None"
    assert "expectation report is missing 'suite_name'" in str(refused(report))
    scenarios = as_json(record("simulate"))
    del scenarios["results"]["scenarios"]["results"][0]["passed"]
    assert "results.scenarios: scenario result is missing" in str(refused(scenarios))


def test_a_naive_time_is_refused() -> None:
    data = as_json(record())
    data["recorded_at"] = "2026-01-01T00:00:01"
    error = refused(data)
    assert error.field == "recorded_at" and "recorded_at must be timezone-aware" in str(error)
    promotion = as_json(record("promote"))
    promotion["results"]["at"] = "2026-01-01T00:00:00"
    assert "promotion result at must be timezone-aware" in str(refused(promotion))


def test_other_schema_versions_fail_with_a_named_reason() -> None:
    data = as_json(record())
    data["schema_version"] = 2
    assert "schema_version 2 is not one this airflow-ml-provider reads (1)" in str(refused(data))


def test_fields_added_to_schema_1_later_may_be_absent() -> None:
    data = as_json(record())
    for key in ("code_identity", "environment", "returned"):
        del data[key]
    assert StepRecord.from_dict(data).environment is None


def test_results_must_match_the_step_kind() -> None:
    data = as_json(record())
    data["step"] = "custom"
    assert "results: a 'custom' step records no results" in str(refused(data))
    data = as_json(record("train"))
    data["step"] = "evaluate"
    assert "results is missing" in str(refused(data))
    with pytest.raises(TypeError, match="a 'train' step record cannot hold a EvaluateResult"):
        record("train", results=RESULTS["evaluate"]).to_dict()


def test_not_a_record_at_all() -> None:
    assert "record must be a mapping, got list" in str(refused([1, 2]))
    assert refused("x").run_id == "(unknown)"


def test_reports_read_back_strictly() -> None:
    data = copy.deepcopy(REPORT.to_dict())
    assert ExpectationReport.from_dict(data) == REPORT
    data["suite_name"] = None
    with pytest.raises(ValueError, match="expectation report suite_name must be a non-empty string"):
        ExpectationReport.from_dict(data)


# --- the one time parser ---------------------------------------------------------------------------------------


def test_parse_time_refuses_naive_times_and_reads_z() -> None:
    assert parse_time("2026-01-01T01:00:00+01:00", "t") == parse_time("2026-01-01T00:00:00Z", "t")
    assert parse_time("2026-01-01T00:00:00Z", "t").utcoffset().total_seconds() == 0
    with pytest.raises(NaiveTimeError, match="t must be timezone-aware"):
        parse_time("2026-01-01T00:00:00", "t")
    with pytest.raises(ValueError, match="t is not an ISO-8601 time"):
        parse_time("yesterday", "t")


# --- the reader -------------------------------------------------------------------------------------------------


def hook_over(artifact_uri: str, remote: Any = None) -> Any:
    """A stand-in for MlflowHook: ``get_run`` names the artifact location; remote reads go to ``remote``."""
    run = types.SimpleNamespace(info=types.SimpleNamespace(artifact_uri=artifact_uri))
    return types.SimpleNamespace(get_run=lambda run_id: run, read_json_artifact=remote)


def test_reader_reads_a_local_record_in_place(tmp_path: Path) -> None:
    path = tmp_path / RECORD_ARTIFACT_PATH
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record().to_dict()))
    assert read_step_record(hook_over(tmp_path.as_uri()), "run-1") == record()

    remote = hook_over("s3://bucket/run-1/artifacts", lambda run_id, artifact: as_json(record()))
    assert read_step_record(remote, "run-1") == record()


def test_reader_names_a_missing_record(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="step record of MLflow run run-9 is missing or unreadable") as excinfo:
        read_step_record(hook_over(tmp_path.as_uri()), "run-9")
    assert excinfo.value.run_id == "run-9" and excinfo.value.field is None
