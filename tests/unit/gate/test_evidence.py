"""Unit tests for gate/evidence.py: the evidence records' validation and JSON round trips."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_ml_provider.gate import (
    ApprovalEvidence,
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    GatePolicy,
    MetricThreshold,
    ScenarioEvidence,
    Subject,
    decide,
)
from tests.support import (
    NOW,
    RAW_FP,
    RECENT,
    full_policy,
    json_round_trip,
    make_approval,
    make_evaluation,
    make_evidence,
    make_expectation,
    make_scenarios,
    make_subject,
)

# ============================================================================================
# Evidence: validation and serialisation
# ============================================================================================


class TestEvidenceClasses:
    def test_evidence_round_trips_through_json(self) -> None:
        evidence = make_evidence(problems=("one", ""))
        assert Evidence.from_dict(json_round_trip(evidence.to_dict())) == evidence

    def test_minimal_evidence_round_trips(self) -> None:
        evidence = Evidence(make_subject(), ())
        data = json_round_trip(evidence.to_dict())
        assert Evidence.from_dict(data) == evidence
        assert (
            Evidence.from_dict({"subject": data["subject"], "training_dataset_fingerprints": []}) == evidence
        )

    def test_non_finite_metrics_survive_strict_json(self) -> None:
        evaluation = make_evaluation(
            metrics={"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.0},
            champion_metrics={"a": math.nan},
        )
        data = json_round_trip(evaluation.to_dict())
        assert data["metrics"] == {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": 1.0}
        back = EvaluationEvidence.from_dict(data)
        assert (
            math.isnan(back.metrics["a"]) and back.metrics["b"] == math.inf and back.metrics["c"] == -math.inf
        )
        assert back.champion_metrics is not None and math.isnan(back.champion_metrics["a"])
        # ... and still fail the gate after the trip
        policy = GatePolicy(
            metrics={"a": MetricThreshold(threshold=0.0, greater_is_better=True)}, require_data_expectations=False
        )
        assert not decide(policy, make_evidence(evaluation=back, scenarios=make_scenarios()), NOW).passed

    def test_datetimes_are_iso_utc(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        item = make_expectation(recorded_at=datetime(2025, 1, 15, 13, 0, tzinfo=plus_two))
        assert item.recorded_at == datetime(2025, 1, 15, 11, 0, tzinfo=timezone.utc)
        assert item.recorded_at.tzinfo == timezone.utc
        assert item.to_dict()["recorded_at"] == "2025-01-15T11:00:00+00:00"

    @pytest.mark.parametrize(
        "text", ["2025-01-15T11:00:00Z", "2025-01-15T13:00:00+02:00", "2025-01-15T11:00:00+00:00"]
    )
    def test_iso_times_are_parsed_in_any_offset(self, text: str) -> None:
        data = make_expectation().to_dict() | {"recorded_at": text}
        assert ExpectationEvidence.from_dict(data).recorded_at == RECENT

    @pytest.mark.parametrize("bad", ["2025-01-15T11:00:00", "yesterday", 1736938800, None])
    def test_naive_or_unparsable_times_are_refused(self, bad: Any) -> None:
        data = make_expectation().to_dict() | {"recorded_at": bad}
        with pytest.raises(ValueError, match="recorded_at"):
            ExpectationEvidence.from_dict(data)

    @pytest.mark.parametrize("builder", [make_expectation, make_evaluation, make_scenarios])
    def test_naive_datetime_is_refused_in_constructors(self, builder: Callable[..., Any]) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            builder(recorded_at=RECENT.replace(tzinfo=None))
        with pytest.raises(ValueError, match="timezone-aware"):
            make_approval(decided_at=RECENT.replace(tzinfo=None))

    @pytest.mark.parametrize(
        ("cls", "instance"),
        [
            (Subject, make_subject()),
            (ExpectationEvidence, make_expectation()),
            (EvaluationEvidence, make_evaluation()),
            (ScenarioEvidence, make_scenarios()),
            (ApprovalEvidence, make_approval()),
            (Evidence, make_evidence()),
        ],
    )
    def test_from_dict_refuses_unknown_and_missing_keys(self, cls: Any, instance: Any) -> None:
        data = instance.to_dict()
        with pytest.raises(ValueError, match="unknown keys"):
            cls.from_dict(data | {"extra": 1})
        required = next(iter(data))
        with pytest.raises(ValueError, match=f"missing '{required}'"):
            cls.from_dict({key: value for key, value in data.items() if key != required})
        with pytest.raises(ValueError, match="must be a mapping"):
            cls.from_dict([data])

    def test_approval_from_dict_without_model_version(self) -> None:
        data = make_approval().to_dict()
        del data["model_version"]
        assert ApprovalEvidence.from_dict(data).model_version is None

    @pytest.mark.parametrize(
        ("build", "match"),
        [
            (lambda: make_subject(model_name=""), "model_name"),
            (lambda: make_subject(model_version=""), "model_version"),
            (lambda: make_subject(model_version=True), "model_version"),
            (lambda: make_subject(model_version=-1), "model_version"),
            (lambda: make_subject(model_fingerprint=""), "model_fingerprint"),
            (lambda: make_expectation(dataset=" "), "dataset"),
            (lambda: make_expectation(suite_name=""), "suite_name"),
            (lambda: make_expectation(success="true"), "success"),
            (lambda: make_expectation(success=1), "success"),
            (lambda: make_expectation(expectation_count=-1), "expectation_count"),
            (lambda: make_expectation(expectation_count=True), "expectation_count"),
            (lambda: make_expectation(expectation_count=1.5), "expectation_count"),
            (lambda: make_expectation(failures="x failed"), "failures"),
            (lambda: make_expectation(failures=(1,)), "failures"),
            (lambda: make_expectation(dataset_fingerprint=""), "dataset_fingerprint"),
            (lambda: make_evaluation(metrics={"a": "0.9"}), "metrics"),
            (lambda: make_evaluation(metrics={"a": True}), "metrics"),
            (lambda: make_evaluation(metrics={"": 0.9}), "metrics"),
            (lambda: make_evaluation(metrics=[0.9]), "metrics"),
            (lambda: make_evaluation(champion_metrics={"a": None}), "champion_metrics"),
            (lambda: make_scenarios(results={"a": "passed"}), "results"),
            (lambda: make_scenarios(results={"a": 1}), "results"),
            (lambda: make_scenarios(results=["a"]), "results"),
            (lambda: make_scenarios(reasons={"a": 1}), "reasons"),
            (lambda: make_approval(approved="yes"), "approved"),
            (lambda: make_approval(approver=""), "approver"),
            (lambda: make_approval(comment=3), "comment"),
            (lambda: make_evidence(subject=make_subject().to_dict()), "subject"),
            (lambda: make_evidence(training_dataset_fingerprints=RAW_FP), "training_dataset_fingerprints"),
            (lambda: make_evidence(data_expectations=(make_expectation().to_dict(),)), "data_expectations"),
            (lambda: make_evidence(data_expectations=make_expectation()), "data_expectations"),
            (lambda: make_evidence(evaluation=make_scenarios()), "evaluation"),
            (lambda: make_evidence(scenarios=make_evaluation()), "scenarios"),
            (lambda: make_evidence(approval=True), "approval"),
            (lambda: make_evidence(problems="broken"), "problems"),
        ],
    )
    def test_malformed_evidence_is_refused(self, build: Callable[[], Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            build()

    def test_lists_become_tuples_and_mappings_are_copied(self) -> None:
        metrics = {"accuracy": 0.9}
        evaluation = make_evaluation(metrics=metrics)
        metrics["accuracy"] = 0.1
        assert evaluation.metrics == {"accuracy": 0.9}
        item = make_expectation(failures=["a"])
        assert item.failures == ("a",)
        evidence = make_evidence(data_expectations=[make_expectation()], problems=["p"])
        assert isinstance(evidence.data_expectations, tuple) and evidence.problems == ("p",)

    def test_records_survive_deepcopy_and_pickle(self) -> None:
        """Airflow deep-copies operator arguments; a policy held by a sensor must survive that."""
        for value in (full_policy(), make_evidence(), decide(full_policy(), make_evidence(), NOW)):
            assert copy.deepcopy(value) == value
            assert pickle.loads(pickle.dumps(value)) == value

    def test_subject_uri(self) -> None:
        assert make_subject().uri == "models:/fraud/3"
