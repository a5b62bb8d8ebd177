"""Unit tests for gate/policy.py: GatePolicy and MetricThreshold validation and serialisation."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from typing import Any

import pytest

from airflow_ml_provider.gate import FirstVersionRule, GatePolicy, MetricThreshold
from tests.support import full_policy, json_round_trip, loose

# ============================================================================================
# Policy: validation and serialisation
# ============================================================================================


class TestMetricThreshold:
    def test_needs_at_least_one_bound(self) -> None:
        with pytest.raises(ValueError, match="at least one of threshold"):
            MetricThreshold()
        with pytest.raises(ValueError, match="at least one of threshold"):
            MetricThreshold(greater_is_better=False)

    @pytest.mark.parametrize("field", ["threshold", "min_absolute_change", "min_relative_change"])
    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "0.9", [0.9]])
    def test_bad_numbers_are_refused_naming_the_field(self, field: str, bad: Any) -> None:
        with pytest.raises(ValueError, match=f"MetricThreshold.{field}"):
            MetricThreshold(**{field: bad})

    def test_greater_is_better_must_be_a_bool(self) -> None:
        with pytest.raises(ValueError, match="greater_is_better"):
            MetricThreshold(threshold=0.9, greater_is_better="false")  # type: ignore[arg-type]

    def test_ints_are_normalised_to_float(self) -> None:
        rule = MetricThreshold(threshold=1, min_absolute_change=0)
        assert rule.threshold == 1.0 and isinstance(rule.threshold, float)
        assert isinstance(rule.min_absolute_change, float)

    def test_negative_change_is_a_tolerated_regression(self) -> None:
        assert MetricThreshold(min_absolute_change=-0.01).min_absolute_change == -0.01

    def test_round_trip(self) -> None:
        rule = MetricThreshold(threshold=0.3, min_relative_change=-0.05, greater_is_better=False)
        assert MetricThreshold.from_dict(json_round_trip(rule.to_dict())) == rule

    def test_from_dict_refuses_unknown_keys(self) -> None:
        with pytest.raises(ValueError, match="unknown keys 'treshold'"):
            MetricThreshold.from_dict({"treshold": 0.9})

    def test_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            MetricThreshold(threshold=0.9).threshold = 0.1  # type: ignore[misc]


class TestGatePolicy:
    def test_defaults_are_strict(self) -> None:
        policy = GatePolicy()
        assert policy.require_data_expectations and policy.require_scenarios
        assert policy.first_version is FirstVersionRule.BLOCK
        assert policy.metrics == {}

    def test_a_policy_that_checks_nothing_is_refused(self) -> None:
        with pytest.raises(ValueError, match="would pass anything"):
            GatePolicy(require_data_expectations=False, require_scenarios=False)
        with pytest.raises(ValueError, match="would pass anything"):
            GatePolicy(require_data_expectations=False, require_scenarios=False, require_approval=True)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"metrics": {"accuracy": MetricThreshold(threshold=0.9)}},
            {"require_data_expectations": True},
            {"require_scenarios": True},
            {"required_suites": ("raw_suite",)},
            {"required_scenarios": ("typical",)},
        ],
    )
    def test_any_one_requirement_is_enough(self, kwargs: dict[str, Any]) -> None:
        values: dict[str, Any] = {"require_data_expectations": False, "require_scenarios": False}
        values.update(kwargs)
        GatePolicy(**values)

    @pytest.mark.parametrize("bad_name", ["", "   ", 3, None])
    def test_metric_names_must_be_non_empty_strings(self, bad_name: Any) -> None:
        with pytest.raises(ValueError, match="metric names"):
            GatePolicy(metrics={bad_name: MetricThreshold(threshold=0.9)})

    def test_metric_rules_must_be_metric_thresholds(self) -> None:
        with pytest.raises(ValueError, match=r"metrics\['accuracy'\]"):
            GatePolicy(metrics={"accuracy": {"threshold": 0.9}})  # type: ignore[dict-item]

    def test_metrics_must_be_a_mapping(self) -> None:
        with pytest.raises(ValueError, match="GatePolicy.metrics"):
            GatePolicy(metrics=[("accuracy", MetricThreshold(threshold=0.9))])  # type: ignore[arg-type]

    @pytest.mark.parametrize("field", ["required_suites", "required_scenarios"])
    def test_name_lists_refuse_a_bare_string(self, field: str) -> None:
        with pytest.raises(ValueError, match=field):
            GatePolicy(**loose({field: "raw_suite"}))

    @pytest.mark.parametrize("field", ["required_suites", "required_scenarios"])
    def test_name_lists_refuse_blank_names_and_duplicates(self, field: str) -> None:
        with pytest.raises(ValueError, match=field):
            GatePolicy(**loose({field: ("a", "")}))
        with pytest.raises(ValueError, match="more than once"):
            GatePolicy(**loose({field: ("a", "b", "a")}))

    def test_name_lists_accept_lists(self) -> None:
        policy = GatePolicy(required_suites=["a", "b"])  # type: ignore[arg-type]
        assert policy.required_suites == ("a", "b")

    @pytest.mark.parametrize("field", ["require_data_expectations", "require_scenarios", "require_approval"])
    def test_flags_must_be_bools(self, field: str) -> None:
        with pytest.raises(ValueError, match=field):
            GatePolicy(**loose({field: "yes"}))

    def test_first_version_accepts_its_string_value(self) -> None:
        assert GatePolicy(first_version="allow").first_version is FirstVersionRule.ALLOW  # type: ignore[arg-type]

    def test_first_version_refuses_unknown_rules(self) -> None:
        with pytest.raises(ValueError, match="first_version must be one of 'allow', 'block'"):
            GatePolicy(first_version="maybe")  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [timedelta(0), timedelta(seconds=-1), 3600])
    def test_max_evidence_age_must_be_a_positive_timedelta(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="max_evidence_age"):
            GatePolicy(max_evidence_age=bad)

    def test_round_trip_through_json(self) -> None:
        policy = full_policy(first_version=FirstVersionRule.ALLOW)
        data = json_round_trip(policy.to_dict())
        assert data["max_evidence_age_seconds"] == 86400.0
        assert data["first_version"] == "allow"
        assert GatePolicy.from_dict(data) == policy

    def test_default_policy_round_trip(self) -> None:
        assert GatePolicy.from_dict(json_round_trip(GatePolicy().to_dict())) == GatePolicy()

    def test_from_dict_fills_missing_keys_with_the_strict_defaults(self) -> None:
        policy = GatePolicy.from_dict({"metrics": {"accuracy": {"threshold": 0.9}}})
        assert policy.require_data_expectations and policy.require_scenarios
        assert policy.first_version is FirstVersionRule.BLOCK
        assert policy.metrics == {"accuracy": MetricThreshold(threshold=0.9, greater_is_better=True)}

    def test_from_dict_refuses_unknown_keys(self) -> None:
        with pytest.raises(ValueError, match="unknown keys 'require_aproval'"):
            GatePolicy.from_dict({"require_aproval": True})

    @pytest.mark.parametrize(
        ("data", "match"),
        [
            ([], "must be a mapping"),
            ({"metrics": []}, "GatePolicy.metrics"),
            ({"metrics": {"accuracy": {}}}, "at least one of threshold"),
            ({"metrics": {"accuracy": {"threshold": "NaN"}}}, "MetricThreshold.threshold"),
            ({"max_evidence_age_seconds": 0}, "must be > 0"),
            ({"max_evidence_age_seconds": -5}, "must be > 0"),
            ({"max_evidence_age_seconds": "1d"}, "max_evidence_age_seconds"),
            ({"max_evidence_age_seconds": 1e30}, "too large"),
            ({"required_suites": "raw"}, "required_suites"),
            ({"require_scenarios": "false"}, "require_scenarios"),
            ({"require_data_expectations": False, "require_scenarios": False}, "would pass anything"),
        ],
    )
    def test_from_dict_validation_errors(self, data: Any, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            GatePolicy.from_dict(data)

    def test_to_dict_is_a_copy(self) -> None:
        policy = full_policy()
        data = policy.to_dict()
        data["metrics"]["accuracy"]["threshold"] = 0.0
        data["required_suites"].append("x")
        assert policy.to_dict() == full_policy().to_dict()

    def test_constructor_copies_the_metrics_mapping(self) -> None:
        metrics = {"accuracy": MetricThreshold(threshold=0.9)}
        policy = GatePolicy(metrics=metrics)
        metrics["accuracy"] = MetricThreshold(threshold=0.0)
        assert policy.metrics["accuracy"].threshold == 0.9
