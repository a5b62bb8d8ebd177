"""
Unit tests for the promotion gate: policy, evidence, verdict and the pure ``decide`` function.

One test per rule and per failure mode, then property-style tests (exhaustive over small spaces,
seeded random beyond that) for the fail-closed guarantees: removing evidence never opens the gate,
a stricter policy never opens it, and every record round-trips through JSON.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest

from airflow_ml_provider.gate import (
    CLOCK_SKEW_TOLERANCE,
    Evidence,
    FirstVersionRule,
    GatePolicy,
    MetricThreshold,
    Verdict,
    decide,
)
from airflow_ml_provider.model.metrics import greater_is_better
from tests.support import (
    FEATURES_FP,
    MODEL_FP,
    NOW,
    RAW_FP,
    failed_names,
    full_policy,
    json_round_trip,
    make_approval,
    make_evaluation,
    make_evidence,
    make_expectation,
    make_features_expectation,
    make_scenarios,
    make_subject,
    metrics_only_policy,
    named,
    names,
)

# ============================================================================================
# The happy path
# ============================================================================================


class TestHappyPath:
    def test_full_policy_passes_complete_evidence(self) -> None:
        verdict = decide(full_policy(), make_evidence(), NOW)
        assert verdict.passed, verdict.to_table()
        assert verdict.failures == ()
        assert verdict.subject == make_subject()
        assert verdict.decided_at == NOW
        assert verdict.policy == full_policy().to_dict()

    def test_full_policy_records_every_check(self) -> None:
        verdict = decide(full_policy(), make_evidence(), NOW)
        assert names(verdict) == [
            "expectations",
            "binding:expectations:raw",
            "freshness:expectations:raw",
            "expectations:raw",
            "binding:expectations:features",
            "freshness:expectations:features",
            "expectations:features",
            "suite:raw_suite",
            "suite:features_suite",
            "binding:scenarios",
            "freshness:scenarios",
            "scenarios",
            "scenario:typical_benign",
            "scenario:fraud_ring",
            "evidence:evaluation",
            "binding:evaluation",
            "freshness:evaluation",
            "metric:accuracy:threshold",
            "metric:accuracy:vs_champion_absolute",
            "metric:accuracy:vs_champion_relative",
            "metric:loss:threshold",
            "metric:loss:vs_champion_absolute",
            "binding:approval",
            "freshness:approval",
            "approval",
        ]
        assert all(item.reason for item in verdict.checks)

    def test_minimal_policy_needs_only_what_it_asks_for(self) -> None:
        evidence = make_evidence(data_expectations=(), scenarios=None, approval=None)
        verdict = decide(metrics_only_policy(), evidence, NOW)
        assert verdict.passed, verdict.to_table()
        assert names(verdict) == ["evidence:evaluation", "binding:evaluation", "metric:accuracy:threshold"]

    def test_decide_is_deterministic_and_does_not_mutate_inputs(self) -> None:
        policy, evidence = full_policy(), make_evidence()
        before = (json.dumps(policy.to_dict()), json.dumps(evidence.to_dict()))
        first, second = decide(policy, evidence, NOW), decide(policy, evidence, NOW)
        assert first == second
        assert first.to_dict() == second.to_dict()
        assert (json.dumps(policy.to_dict()), json.dumps(evidence.to_dict())) == before

    def test_now_in_another_timezone_is_normalised(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        verdict = decide(full_policy(), make_evidence(), NOW.astimezone(plus_two))
        assert verdict.decided_at == NOW
        assert verdict.decided_at.tzinfo == timezone.utc
        assert verdict.passed

    def test_naive_now_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            decide(full_policy(), make_evidence(), NOW.replace(tzinfo=None))

    def test_wrong_argument_types_are_refused(self) -> None:
        with pytest.raises(TypeError, match="GatePolicy"):
            decide(full_policy().to_dict(), make_evidence(), NOW)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Evidence"):
            decide(full_policy(), make_evidence().to_dict(), NOW)  # type: ignore[arg-type]


# ============================================================================================
# Problems reported by the gathering side
# ============================================================================================


class TestProblems:
    def test_each_problem_is_a_failed_check(self) -> None:
        problems = ("evaluation record unreadable: bad JSON", "scenario run 42 not found")
        verdict = decide(full_policy(), make_evidence(problems=problems), NOW)
        assert not verdict.passed
        failed = [item for item in verdict.failures if item.name == "evidence:problem"]
        assert [item.reason for item in failed] == list(problems)

    def test_problem_fails_even_when_everything_else_passes(self) -> None:
        verdict = decide(full_policy(), make_evidence(problems=("x",)), NOW)
        assert failed_names(verdict) == ["evidence:problem"]

    def test_blank_problem_still_fails_with_a_reason(self) -> None:
        verdict = decide(full_policy(), make_evidence(problems=("  ",)), NOW)
        check = named(verdict, "evidence:problem")
        assert not check.passed
        assert "without a description" in check.reason


# ============================================================================================
# Binding: evidence must be about the exact version and artifact under decision
# ============================================================================================


class TestModelBinding:
    @pytest.mark.parametrize(
        ("field", "builder"), [("evaluation", make_evaluation), ("scenarios", make_scenarios)]
    )
    def test_wrong_version_fails(self, field: str, builder: Callable[..., Any]) -> None:
        verdict = decide(full_policy(), make_evidence(**{field: builder(model_version="2")}), NOW)
        check = named(verdict, f"binding:{field}")
        assert not check.passed
        assert "'2'" in check.reason and "'3'" in check.reason
        assert not verdict.passed

    @pytest.mark.parametrize(
        ("field", "builder"), [("evaluation", make_evaluation), ("scenarios", make_scenarios)]
    )
    def test_fingerprint_mismatch_fails(self, field: str, builder: Callable[..., Any]) -> None:
        evidence = make_evidence(**{field: builder(model_fingerprint="sha256:other")})
        check = named(decide(full_policy(), evidence, NOW), f"binding:{field}")
        assert not check.passed
        assert "artifact mismatch" in check.reason
        assert "sha256:other" in check.reason and MODEL_FP in check.reason

    @pytest.mark.parametrize(
        ("field", "builder"), [("evaluation", make_evaluation), ("scenarios", make_scenarios)]
    )
    def test_evidence_without_fingerprint_when_subject_has_one_fails(
        self, field: str, builder: Callable[..., Any]
    ) -> None:
        evidence = make_evidence(**{field: builder(model_fingerprint=None)})
        check = named(decide(full_policy(), evidence, NOW), f"binding:{field}")
        assert not check.passed
        assert "cannot verify the artifact" in check.reason

    @pytest.mark.parametrize("field", ["evaluation", "scenarios"])
    def test_subject_without_fingerprint_when_evidence_has_one_fails(self, field: str) -> None:
        evidence = make_evidence(subject=make_subject(model_fingerprint=None))
        check = named(decide(full_policy(), evidence, NOW), f"binding:{field}")
        assert not check.passed
        assert "cannot verify the artifact" in check.reason
        assert "has no fingerprint" in check.reason

    def test_no_fingerprint_on_either_side_binds_by_version_only(self) -> None:
        evidence = make_evidence(
            subject=make_subject(model_fingerprint=None),
            evaluation=make_evaluation(model_fingerprint=None),
            scenarios=make_scenarios(model_fingerprint=None),
        )
        verdict = decide(full_policy(), evidence, NOW)
        assert verdict.passed, verdict.to_table()
        assert "bound by version only" in named(verdict, "binding:evaluation").reason

    def test_unbound_evaluation_skips_metric_checks(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(model_version="2"))
        verdict = decide(full_policy(), evidence, NOW)
        assert not any(name.startswith("metric:") for name in names(verdict))

    def test_unbound_scenarios_skip_scenario_checks(self) -> None:
        evidence = make_evidence(scenarios=make_scenarios(model_version="2"))
        verdict = decide(full_policy(), evidence, NOW)
        assert not any(name.startswith("scenario") for name in names(verdict))

    def test_versions_given_as_int_bind_to_string_versions(self) -> None:
        evidence = make_evidence(
            subject=make_subject(model_version=3), evaluation=make_evaluation(model_version=3)
        )
        assert decide(full_policy(), evidence, NOW).passed


class TestExpectationBinding:
    def test_bound_by_training_dataset_fingerprint(self) -> None:
        check = named(decide(full_policy(), make_evidence(), NOW), "binding:expectations:raw")
        assert check.passed
        assert RAW_FP in check.reason

    def test_bound_by_model_version(self) -> None:
        check = named(decide(full_policy(), make_evidence(), NOW), "binding:expectations:features")
        assert check.passed
        assert "names version 3" in check.reason

    def test_version_binding_does_not_need_a_training_fingerprint(self) -> None:
        item = make_expectation(dataset="holdout", dataset_fingerprint="blake3:holdout", model_version="3")
        evidence = make_evidence(data_expectations=(*make_evidence().data_expectations, item))
        assert decide(full_policy(), evidence, NOW).passed

    def test_other_model_version_fails_even_with_a_training_fingerprint(self) -> None:
        evidence = make_evidence(data_expectations=(make_expectation(model_version="2"),))
        check = named(decide(full_policy(), evidence, NOW), "binding:expectations:raw")
        assert not check.passed
        assert "'2'" in check.reason and "'raw'" in check.reason

    def test_fingerprint_not_in_training_data_fails(self) -> None:
        evidence = make_evidence(data_expectations=(make_expectation(dataset_fingerprint="blake3:other"),))
        check = named(decide(full_policy(), evidence, NOW), "binding:expectations:raw")
        assert not check.passed
        assert "blake3:other" in check.reason
        assert "not among the datasets" in check.reason

    def test_no_fingerprint_and_no_version_fails(self) -> None:
        evidence = make_evidence(data_expectations=(make_expectation(dataset_fingerprint=None),))
        check = named(decide(full_policy(), evidence, NOW), "binding:expectations:raw")
        assert not check.passed
        assert "cannot tell which data was validated" in check.reason

    def test_no_training_fingerprints_recorded(self) -> None:
        evidence = make_evidence(training_dataset_fingerprints=())
        check = named(decide(full_policy(), evidence, NOW), "binding:expectations:raw")
        assert not check.passed
        assert "none recorded" in check.reason

    def test_unbound_expectation_skips_its_content_check_and_suite(self) -> None:
        evidence = make_evidence(
            data_expectations=(make_expectation(model_version="2"), make_features_expectation())
        )
        verdict = decide(full_policy(), evidence, NOW)
        assert "expectations:raw" not in names(verdict)
        assert not named(verdict, "suite:raw_suite").passed


# ============================================================================================
# Freshness
# ============================================================================================


def _age_everything(evidence: Evidence, recorded_at: datetime) -> Evidence:
    return replace(
        evidence,
        data_expectations=tuple(
            replace(item, recorded_at=recorded_at) for item in evidence.data_expectations
        ),
        evaluation=replace(evidence.evaluation, recorded_at=recorded_at),  # type: ignore[type-var]
        scenarios=replace(evidence.scenarios, recorded_at=recorded_at),  # type: ignore[type-var]
        approval=replace(evidence.approval, decided_at=recorded_at),  # type: ignore[type-var]
    )


FRESHNESS_CHECKS = [
    "freshness:expectations:raw",
    "freshness:expectations:features",
    "freshness:scenarios",
    "freshness:evaluation",
    "freshness:approval",
]
#: Stale or future data evidence cannot satisfy a required suite either.
SUITE_CHECKS = ["suite:raw_suite", "suite:features_suite"]


class TestFreshness:
    @pytest.mark.parametrize(
        ("name", "stale"),
        [
            ("freshness:expectations:raw", lambda e: replace(e, data_expectations=(
                make_expectation(recorded_at=NOW - timedelta(days=2)), make_features_expectation()))),
            ("freshness:scenarios", lambda e: replace(e, scenarios=make_scenarios(
                recorded_at=NOW - timedelta(days=2)))),
            ("freshness:evaluation", lambda e: replace(e, evaluation=make_evaluation(
                recorded_at=NOW - timedelta(days=2)))),
            ("freshness:approval", lambda e: replace(e, approval=make_approval(
                decided_at=NOW - timedelta(days=2)))),
        ],
    )  # fmt: skip
    def test_each_kind_of_stale_evidence_fails(
        self, name: str, stale: Callable[[Evidence], Evidence]
    ) -> None:
        verdict = decide(full_policy(), stale(make_evidence()), NOW)
        check = named(verdict, name)
        assert not check.passed
        assert check.reason.startswith("stale: recorded 2d ago")
        assert "1d limit" in check.reason
        # stale data evidence also cannot satisfy the suite it ran
        also = ["suite:raw_suite"] if name == "freshness:expectations:raw" else []
        assert failed_names(verdict) == [name, *also]

    def test_age_exactly_at_the_limit_passes(self) -> None:
        evidence = _age_everything(make_evidence(), NOW - timedelta(days=1))
        verdict = decide(full_policy(), evidence, NOW)
        assert verdict.passed, verdict.to_table()

    def test_one_microsecond_over_the_limit_fails(self) -> None:
        evidence = _age_everything(make_evidence(), NOW - timedelta(days=1, microseconds=1))
        verdict = decide(full_policy(), evidence, NOW)
        assert sorted(failed_names(verdict)) == sorted(FRESHNESS_CHECKS + SUITE_CHECKS)

    def test_no_max_age_means_no_age_checks(self) -> None:
        evidence = _age_everything(make_evidence(), NOW - timedelta(days=3650))
        verdict = decide(full_policy(max_evidence_age=None), evidence, NOW)
        assert verdict.passed
        assert not any(name.startswith("freshness:") for name in names(verdict))

    @pytest.mark.parametrize("max_age", [None, timedelta(days=1)])
    def test_future_evidence_beyond_tolerance_fails_with_or_without_max_age(
        self, max_age: timedelta | None
    ) -> None:
        future = NOW + CLOCK_SKEW_TOLERANCE + timedelta(seconds=1)
        evidence = _age_everything(make_evidence(), future)
        verdict = decide(full_policy(max_evidence_age=max_age), evidence, NOW)
        assert sorted(failed_names(verdict)) == sorted(FRESHNESS_CHECKS + SUITE_CHECKS)
        reason = named(verdict, "freshness:evaluation").reason
        assert "in the future" in reason and "forged" in reason

    def test_future_evidence_within_tolerance_passes(self) -> None:
        evidence = _age_everything(make_evidence(), NOW + CLOCK_SKEW_TOLERANCE)
        verdict = decide(full_policy(), evidence, NOW)
        assert verdict.passed, verdict.to_table()
        assert "clock-skew tolerance" in named(verdict, "freshness:evaluation").reason

    def test_fresh_reason_names_the_age(self) -> None:
        reason = named(decide(full_policy(), make_evidence(), NOW), "freshness:evaluation").reason
        assert reason == "recorded 1h ago, within the 1d limit"

    def test_stale_evidence_does_not_satisfy_a_required_suite(self) -> None:
        evidence = make_evidence(
            data_expectations=(
                make_expectation(recorded_at=NOW - timedelta(days=2)),
                make_features_expectation(),
            )
        )
        verdict = decide(full_policy(), evidence, NOW)
        assert not named(verdict, "suite:raw_suite").passed


# ============================================================================================
# Data expectations
# ============================================================================================


class TestDataExpectations:
    def test_required_but_none_present_fails(self) -> None:
        verdict = decide(full_policy(required_suites=()), make_evidence(data_expectations=()), NOW)
        check = named(verdict, "expectations")
        assert not check.passed
        assert "no data expectation evidence" in check.reason
        assert failed_names(verdict) == ["expectations"]

    def test_not_required_and_none_present_is_fine(self) -> None:
        policy = full_policy(require_data_expectations=False, required_suites=())
        verdict = decide(policy, make_evidence(data_expectations=()), NOW)
        assert verdict.passed
        assert not any(name.startswith(("expectations", "suite:")) for name in names(verdict))

    def test_failed_suite_fails_with_the_failures_quoted(self) -> None:
        item = make_expectation(success=False, failures=("amount not null", "currency in set"))
        verdict = decide(
            full_policy(), make_evidence(data_expectations=(item, make_features_expectation())), NOW
        )
        check = named(verdict, "expectations:raw")
        assert not check.passed
        assert "2 of 12 expectations failed" in check.reason
        assert "amount not null" in check.reason and "currency in set" in check.reason

    def test_many_failures_are_abbreviated(self) -> None:
        failures = tuple(f"expectation {n}" for n in range(9))
        item = make_expectation(success=False, failures=failures)
        reason = named(
            decide(full_policy(), make_evidence(data_expectations=(item,)), NOW), "expectations:raw"
        ).reason
        assert "expectation 4" in reason and "expectation 5" not in reason
        assert "and 4 more" in reason

    def test_failed_suite_without_details_still_fails(self) -> None:
        item = make_expectation(success=False)
        check = named(
            decide(full_policy(), make_evidence(data_expectations=(item,)), NOW), "expectations:raw"
        )
        assert not check.passed
        assert "no failure details" in check.reason

    @pytest.mark.parametrize("success", [True, False])
    def test_empty_suite_fails_even_when_reported_successful(self, success: bool) -> None:
        item = make_expectation(success=success, expectation_count=0)
        check = named(
            decide(full_policy(), make_evidence(data_expectations=(item,)), NOW), "expectations:raw"
        )
        assert not check.passed
        assert "empty suite" in check.reason

    def test_success_that_lists_failures_is_ambiguous_and_fails(self) -> None:
        item = make_expectation(success=True, failures=("amount not null",))
        check = named(
            decide(full_policy(), make_evidence(data_expectations=(item,)), NOW), "expectations:raw"
        )
        assert not check.passed
        assert "ambiguous" in check.reason

    def test_every_present_result_must_pass_when_not_required(self) -> None:
        policy = full_policy(require_data_expectations=False, required_suites=())
        item = make_expectation(success=False, failures=("x",))
        assert not decide(policy, make_evidence(data_expectations=(item,)), NOW).passed

    def test_one_failing_run_of_a_suite_fails_even_if_another_run_passed(self) -> None:
        items = (
            make_expectation(),
            make_expectation(success=False, failures=("x",)),
            make_features_expectation(),
        )
        verdict = decide(full_policy(), make_evidence(data_expectations=items), NOW)
        assert not verdict.passed
        assert named(verdict, "suite:raw_suite").passed
        assert [c.passed for c in verdict.checks if c.name == "expectations:raw"] == [True, False]

    def test_required_suite_not_run_fails(self) -> None:
        evidence = make_evidence(data_expectations=(make_expectation(),))
        check = named(decide(full_policy(), evidence, NOW), "suite:features_suite")
        assert not check.passed
        assert "was not run" in check.reason

    def test_required_suite_run_but_failed_fails(self) -> None:
        items = (make_expectation(), make_features_expectation(success=False, failures=("x",)))
        check = named(
            decide(full_policy(), make_evidence(data_expectations=items), NOW), "suite:features_suite"
        )
        assert not check.passed
        assert "did not pass" in check.reason

    def test_required_suites_apply_even_when_expectations_are_not_required(self) -> None:
        policy = full_policy(require_data_expectations=False)
        verdict = decide(policy, make_evidence(data_expectations=()), NOW)
        assert sorted(failed_names(verdict)) == ["suite:features_suite", "suite:raw_suite"]

    def test_required_suite_reason_names_the_datasets(self) -> None:
        check = named(decide(full_policy(), make_evidence(), NOW), "suite:raw_suite")
        assert check.passed
        assert check.reason == "required suite 'raw_suite' passed on raw"


# ============================================================================================
# Scenarios
# ============================================================================================


class TestScenarios:
    def test_required_but_missing_fails(self) -> None:
        verdict = decide(full_policy(), make_evidence(scenarios=None), NOW)
        check = named(verdict, "scenarios")
        assert not check.passed
        assert "no scenario evidence" in check.reason
        assert "typical_benign" in check.reason
        assert failed_names(verdict) == ["scenarios"]

    def test_not_required_and_missing_is_fine(self) -> None:
        policy = full_policy(require_scenarios=False, required_scenarios=())
        verdict = decide(policy, make_evidence(scenarios=None), NOW)
        assert verdict.passed
        assert not any(name.startswith("scenario") for name in names(verdict))

    def test_required_scenario_names_imply_a_run_is_required(self) -> None:
        policy = full_policy(require_scenarios=False)
        verdict = decide(policy, make_evidence(scenarios=None), NOW)
        assert failed_names(verdict) == ["scenarios"]

    @pytest.mark.parametrize("required", [True, False])
    def test_zero_scenarios_fails(self, required: bool) -> None:
        policy = full_policy(require_scenarios=required, required_scenarios=())
        verdict = decide(policy, make_evidence(scenarios=make_scenarios(results={}, reasons={})), NOW)
        check = named(verdict, "scenarios")
        assert not check.passed
        assert "no scenarios" in check.reason

    def test_each_scenario_is_a_check(self) -> None:
        verdict = decide(full_policy(), make_evidence(), NOW)
        assert named(verdict, "scenario:typical_benign").reason == "passed"
        assert named(verdict, "scenario:fraud_ring").reason == "caught 10 of 10"
        assert named(verdict, "scenarios").reason == "2 scenario(s) run, 2 passed"

    def test_failed_scenario_fails_with_its_reason(self) -> None:
        run = make_scenarios(
            results={"typical_benign": True, "fraud_ring": False}, reasons={"fraud_ring": "missed 3"}
        )
        verdict = decide(full_policy(), make_evidence(scenarios=run), NOW)
        check = named(verdict, "scenario:fraud_ring")
        assert not check.passed and check.reason == "missed 3"
        assert failed_names(verdict) == ["scenario:fraud_ring"]
        assert named(verdict, "scenarios").reason == "2 scenario(s) run, 1 passed"

    def test_failed_scenario_without_reason_says_so(self) -> None:
        run = make_scenarios(results={"typical_benign": True, "fraud_ring": False}, reasons={})
        check = named(decide(full_policy(), make_evidence(scenarios=run), NOW), "scenario:fraud_ring")
        assert check.reason == "failed (no reason recorded)"

    def test_failed_scenario_fails_even_when_scenarios_are_not_required(self) -> None:
        policy = full_policy(require_scenarios=False, required_scenarios=())
        run = make_scenarios(results={"fraud_ring": False})
        assert not decide(policy, make_evidence(scenarios=run), NOW).passed

    def test_required_scenario_listed_but_not_run_fails(self) -> None:
        policy = full_policy(required_scenarios=("typical_benign", "account_takeover"))
        verdict = decide(policy, make_evidence(), NOW)
        check = named(verdict, "scenario:account_takeover")
        assert not check.passed
        assert "listed in the policy but was not run" in check.reason
        assert failed_names(verdict) == ["scenario:account_takeover"]


# ============================================================================================
# Metrics
# ============================================================================================


def _metric_verdict(
    rule: MetricThreshold,
    value: float,
    champion: float | None = None,
    *,
    champion_version: str | None = "3-prev",
    first_version: FirstVersionRule = FirstVersionRule.BLOCK,
) -> Verdict:
    """Decide one metric rule in isolation: only the evaluation matters.

    ``m`` is a custom metric, so its rule must state a direction: higher is better unless it says otherwise.
    """
    if rule.greater_is_better is None:
        rule = replace(rule, greater_is_better=True)
    evaluation = make_evaluation(
        metrics={"m": value},
        champion_version=None if champion is None else champion_version,
        champion_metrics=None if champion is None else {"m": champion},
    )
    policy = GatePolicy(
        metrics={"m": rule},
        require_data_expectations=False,
        require_scenarios=False,
        first_version=first_version,
    )
    return decide(policy, make_evidence(evaluation=evaluation), NOW)


class TestMetrics:
    def test_missing_evaluation_fails(self) -> None:
        verdict = decide(full_policy(), make_evidence(evaluation=None), NOW)
        check = named(verdict, "evidence:evaluation")
        assert not check.passed
        assert "no evaluation evidence for models:/fraud/3" in check.reason
        assert "accuracy, loss" in check.reason
        assert failed_names(verdict) == ["evidence:evaluation"]

    def test_evaluation_without_policy_metrics_is_still_bound(self) -> None:
        policy = full_policy(metrics={})
        verdict = decide(policy, make_evidence(evaluation=make_evaluation(model_version="9")), NOW)
        assert failed_names(verdict) == ["binding:evaluation"]
        assert "evidence:evaluation" not in names(verdict)

    def test_missing_metric_fails(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(metrics={"loss": 0.2}))
        verdict = decide(full_policy(), evidence, NOW)
        check = named(verdict, "metric:accuracy")
        assert not check.passed
        assert "'accuracy' is missing" in check.reason and "has: loss" in check.reason
        assert not any(name.startswith("metric:accuracy:") for name in names(verdict))

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_non_finite_metric_fails(self, bad: float) -> None:
        evidence = make_evidence(evaluation=make_evaluation(metrics={"accuracy": bad, "loss": 0.2}))
        verdict = decide(full_policy(), evidence, NOW)
        check = named(verdict, "metric:accuracy")
        assert not check.passed
        assert "not a finite number" in check.reason
        assert failed_names(verdict) == ["metric:accuracy"]

    def test_threshold_pass_reason(self) -> None:
        check = named(_metric_verdict(MetricThreshold(threshold=0.9), 0.912), "metric:m:threshold")
        assert check.passed and check.reason == "m 0.912 is at or above the minimum 0.900 (higher is better)"

    def test_threshold_fail_reason(self) -> None:
        check = named(_metric_verdict(MetricThreshold(threshold=0.9), 0.81), "metric:m:threshold")
        assert not check.passed and check.reason == "m 0.810 is below the minimum 0.900 (higher is better)"

    def test_threshold_is_inclusive(self) -> None:
        assert _metric_verdict(MetricThreshold(threshold=0.9), 0.9).passed
        assert _metric_verdict(MetricThreshold(threshold=0.2, greater_is_better=False), 0.2).passed

    def test_lower_is_better_threshold(self) -> None:
        rule = MetricThreshold(threshold=0.3, greater_is_better=False)
        passed = named(_metric_verdict(rule, 0.2), "metric:m:threshold")
        failed = named(_metric_verdict(rule, 0.35), "metric:m:threshold")
        assert passed.passed and passed.reason == "m 0.200 is at or below the maximum 0.300 (lower is better)"
        assert not failed.passed and failed.reason == "m 0.350 is above the maximum 0.300 (lower is better)"

    def test_reason_shows_more_digits_when_three_would_hide_the_difference(self) -> None:
        check = named(_metric_verdict(MetricThreshold(threshold=0.9), 0.8996), "metric:m:threshold")
        assert not check.passed
        assert check.reason == "m 0.8996 is below the minimum 0.9 (higher is better)"

    def test_reason_shows_tiny_values_exactly(self) -> None:
        rule = MetricThreshold(threshold=0.001, greater_is_better=False)
        check = named(_metric_verdict(rule, 0.0005), "metric:m:threshold")
        assert check.reason == "m 0.0005 is at or below the maximum 0.001 (lower is better)"

    def test_absolute_change_regression_beyond_tolerance_fails(self) -> None:
        evaluation = make_evaluation(
            metrics={"accuracy": 0.88}, champion_version="3", champion_metrics={"accuracy": 0.905}
        )
        policy = GatePolicy(
            metrics={"accuracy": MetricThreshold(min_absolute_change=-0.01)},
            require_data_expectations=False,
            require_scenarios=False,
        )
        evidence = make_evidence(subject=make_subject(model_version="4"), evaluation=replace(evaluation))
        evidence = replace(evidence, evaluation=replace(evaluation, model_version="4"))
        check = named(decide(policy, evidence, NOW), "metric:accuracy:vs_champion_absolute")
        assert not check.passed
        assert check.reason == (
            "accuracy 0.880 vs champion v3 0.905: worse by 0.025; the policy allows worse by at most 0.010 "
            "(higher is better)"
        )

    def test_absolute_change_within_tolerated_regression_passes(self) -> None:
        check = named(
            _metric_verdict(MetricThreshold(min_absolute_change=-0.01), 0.9, 0.905),
            "metric:m:vs_champion_absolute",
        )
        assert check.passed
        assert "worse by 0.005; the policy allows worse by at most 0.010 (higher is better)" in check.reason

    def test_absolute_change_requires_improvement(self) -> None:
        rule = MetricThreshold(min_absolute_change=0.01)
        assert not _metric_verdict(rule, 0.905, 0.9).passed
        assert _metric_verdict(rule, 0.92, 0.9).passed

    def test_no_change_passes_a_zero_requirement_and_shows_no_minus_sign(self) -> None:
        rule = MetricThreshold(min_absolute_change=0.0, greater_is_better=False)
        check = named(_metric_verdict(rule, 0.2, 0.2), "metric:m:vs_champion_absolute")
        assert check.passed
        assert "0.200: no change; the policy requires no worse (lower is better)" in check.reason

    def test_lower_is_better_change_counts_a_decrease_as_improvement(self) -> None:
        rule = MetricThreshold(min_absolute_change=0.01, greater_is_better=False)
        better = named(_metric_verdict(rule, 0.18, 0.2), "metric:m:vs_champion_absolute")
        worse = named(_metric_verdict(rule, 0.22, 0.2), "metric:m:vs_champion_absolute")
        assert better.passed and "better by 0.020" in better.reason and better.reason.endswith("(lower is better)")
        assert not worse.passed and "worse by 0.020; the policy requires better by at least 0.010" in worse.reason

    def test_relative_change(self) -> None:
        rule = MetricThreshold(min_relative_change=0.05)
        passed = named(_metric_verdict(rule, 0.84, 0.8), "metric:m:vs_champion_relative")
        failed = named(_metric_verdict(rule, 0.82, 0.8), "metric:m:vs_champion_relative")
        required = "of the champion's value; the policy requires better by at least 0.050"
        assert passed.passed and f"better by 0.050 {required}" in passed.reason
        assert not failed.passed and f"better by 0.025 {required}" in failed.reason

    def test_changes_are_exact_on_the_numbers_as_written(self) -> None:
        # in floats 0.3 - 0.2 = 0.09999999999999998 and (0.84 - 0.8) / 0.8 = 0.04999999999999990
        absolute = named(
            _metric_verdict(MetricThreshold(min_absolute_change=0.1), 0.3, 0.2),
            "metric:m:vs_champion_absolute",
        )
        assert absolute.passed and "better by 0.100; the policy requires better by at least 0.100" in absolute.reason
        relative = named(
            _metric_verdict(MetricThreshold(min_relative_change=0.05), 0.84, 0.8),
            "metric:m:vs_champion_relative",
        )
        assert relative.passed

    def test_relative_change_uses_the_champion_magnitude(self) -> None:
        # champion -2.0 -> -1.0 is +1.0 absolute, +50% relative to |champion|
        check = named(
            _metric_verdict(MetricThreshold(min_relative_change=0.5), -1.0, -2.0),
            "metric:m:vs_champion_relative",
        )
        assert check.passed and "better by 0.500 of the champion's value" in check.reason

    @pytest.mark.parametrize(
        ("value", "required", "passed", "note"),
        [
            (0.1, 1000.0, True, "any improvement is an unbounded relative gain"),
            (0.0, 0.0, True, "both 0: no change"),
            (0.0, -0.1, True, "both 0: no change"),
            (0.0, 0.01, False, "both 0: no change"),
            (-0.1, -1000.0, False, "any regression is an unbounded relative loss"),
        ],
    )
    def test_relative_change_against_a_zero_champion(
        self, value: float, required: float, passed: bool, note: str
    ) -> None:
        check = named(
            _metric_verdict(MetricThreshold(min_relative_change=required), value, 0.0),
            "metric:m:vs_champion_relative",
        )
        assert check.passed is passed
        assert note in check.reason

    def test_champion_metric_missing_fails(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_metrics={"loss": 0.25}))
        verdict = decide(full_policy(), evidence, NOW)
        check = named(verdict, "metric:accuracy:vs_champion_absolute")
        assert not check.passed
        assert "champion v2 has no recorded 'accuracy'" in check.reason
        assert named(verdict, "metric:accuracy:threshold").passed

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_champion_metric_non_finite_fails(self, bad: float) -> None:
        check = named(
            _metric_verdict(MetricThreshold(min_absolute_change=0.0), 0.9, bad),
            "metric:m:vs_champion_absolute",
        )
        assert not check.passed
        assert "not a finite number" in check.reason

    def test_champion_version_without_metrics_fails(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_metrics=None))
        check = named(decide(full_policy(), evidence, NOW), "metric:accuracy:vs_champion_relative")
        assert not check.passed
        assert "no champion metrics were recorded" in check.reason

    @pytest.mark.parametrize("rule", list(FirstVersionRule))
    def test_champion_metrics_without_version_are_ambiguous(self, rule: FirstVersionRule) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_version=None))
        verdict = decide(full_policy(first_version=rule), evidence, NOW)
        check = named(verdict, "metric:accuracy:vs_champion_absolute")
        assert not check.passed
        assert "without a champion version" in check.reason

    def test_champion_that_is_the_candidate_itself_fails(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_version="3"))
        check = named(decide(full_policy(), evidence, NOW), "metric:accuracy:vs_champion_absolute")
        assert not check.passed
        assert "compared with itself" in check.reason

    def test_non_numeric_champion_version_is_quoted(self) -> None:
        check = named(
            _metric_verdict(MetricThreshold(min_absolute_change=0.0), 0.9, 0.8, champion_version="prod-a"),
            "metric:m:vs_champion_absolute",
        )
        assert "champion 'prod-a' 0.800" in check.reason

    def test_first_version_allow_records_comparisons_as_passed(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_version=None, champion_metrics=None))
        verdict = decide(full_policy(first_version=FirstVersionRule.ALLOW), evidence, NOW)
        assert verdict.passed, verdict.to_table()
        for name in (
            "metric:accuracy:vs_champion_absolute",
            "metric:accuracy:vs_champion_relative",
            "metric:loss:vs_champion_absolute",
        ):
            check = named(verdict, name)
            assert check.passed and check.reason == "no champion: first-version rule 'allow'"

    def test_first_version_block_fails_every_comparison(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_version=None, champion_metrics=None))
        verdict = decide(full_policy(first_version=FirstVersionRule.BLOCK), evidence, NOW)
        assert failed_names(verdict) == [
            "metric:accuracy:vs_champion_absolute",
            "metric:accuracy:vs_champion_relative",
            "metric:loss:vs_champion_absolute",
        ]
        assert all("first-version rule 'block'" in item.reason for item in verdict.failures)

    def test_first_version_rule_is_not_consulted_without_change_rules(self) -> None:
        evidence = make_evidence(evaluation=make_evaluation(champion_version=None, champion_metrics=None))
        policy = metrics_only_policy(first_version=FirstVersionRule.BLOCK)
        assert decide(policy, evidence, NOW).passed

    def test_threshold_and_change_are_independent_checks(self) -> None:
        rule = MetricThreshold(threshold=0.95, min_absolute_change=0.0)
        verdict = _metric_verdict(rule, 0.9, 0.8)
        assert not named(verdict, "metric:m:threshold").passed
        assert named(verdict, "metric:m:vs_champion_absolute").passed

    def test_huge_values_do_not_break_the_comparison(self) -> None:
        rule = MetricThreshold(min_absolute_change=0.0)
        check = named(_metric_verdict(rule, 1e308, -1e308), "metric:m:vs_champion_absolute")
        assert check.passed  # the difference overflows to +inf, which is still an improvement


# ============================================================================================
# Metric directions: from the one table of built-in metrics, never guessed
# ============================================================================================


def _regression_verdict(policy: dict[str, Any], rmse: float, champion: float | None) -> Verdict:
    evaluation = make_evaluation(
        metrics={"rmse": rmse},
        champion_version=None if champion is None else "10",
        champion_metrics=None if champion is None else {"rmse": champion},
    )
    policy = {"require_data_expectations": False, "require_scenarios": False, **policy}
    return decide(GatePolicy.from_dict(policy), make_evidence(evaluation=evaluation), NOW)


class TestMetricDirections:
    def test_a_worse_rmse_is_blocked_by_a_change_only_policy(self) -> None:
        """The user's case: {"rmse": {"min_absolute_change": 0.0}} promoted 64.982 over a 53.458 champion."""
        verdict = _regression_verdict({"metrics": {"rmse": {"min_absolute_change": 0.0}}}, 64.982, 53.458)
        check = named(verdict, "metric:rmse:vs_champion_absolute")
        assert not verdict.passed and not check.passed
        assert check.reason == (
            "rmse 64.982 vs champion v10 53.458: worse by 11.524; the policy requires no worse (lower is better)"
        )
        better = _regression_verdict({"metrics": {"rmse": {"min_absolute_change": 0.0}}}, 50.0, 53.458)
        assert better.passed, better.to_table()
        assert "better by 3.458" in named(better, "metric:rmse:vs_champion_absolute").reason

    def test_an_rmse_threshold_is_a_maximum(self) -> None:
        below = _regression_verdict({"metrics": {"rmse": {"threshold": 65}}}, 53.458, None)
        passed = named(below, "metric:rmse:threshold")
        assert passed.passed and passed.reason == "rmse 53.458 is at or below the maximum 65.000 (lower is better)"
        above = _regression_verdict({"metrics": {"rmse": {"threshold": 50}}}, 53.46, None)
        failed = named(above, "metric:rmse:threshold")
        assert not failed.passed and failed.reason == "rmse 53.460 is above the maximum 50.000 (lower is better)"

    @pytest.mark.parametrize(
        ("metric", "greater"),
        [(m, True) for m in ("accuracy", "precision", "recall", "f1", "roc_auc", "r2")]
        + [(m, False) for m in ("rmse", "mae", "mse", "log_loss")],
    )
    def test_builtin_metrics_take_their_direction_from_the_table(self, metric: str, greater: bool) -> None:
        policy = GatePolicy.from_dict({"metrics": {metric: {"threshold": 0.5}}})
        assert policy.metrics[metric].greater_is_better is greater
        assert policy.to_dict()["metrics"][metric]["greater_is_better"] is greater  # the record is explicit
        assert GatePolicy.from_dict(json_round_trip(policy.to_dict())) == policy
        # stating the same direction is fine
        assert GatePolicy.from_dict({"metrics": {metric: {"threshold": 0.5, "greater_is_better": greater}}}) == policy

    @pytest.mark.parametrize("metric", ["rmse", "accuracy"])
    def test_a_direction_that_contradicts_the_table_is_refused(self, metric: str) -> None:
        wrong = greater_is_better(metric) is False
        with pytest.raises(ValueError) as excinfo:
            GatePolicy(metrics={metric: MetricThreshold(min_absolute_change=0.0, greater_is_better=wrong)})
        message = str(excinfo.value)
        assert f"GatePolicy.metrics[{metric!r}]" in message and "contradicts" in message
        assert ("lower is better" if metric == "rmse" else "higher is better") in message
        assert "remove greater_is_better" in message

    def test_a_custom_metric_without_a_direction_is_refused(self) -> None:
        with pytest.raises(ValueError) as excinfo:
            GatePolicy.from_dict({"metrics": {"business_cost": {"threshold": 100}}})
        message = str(excinfo.value)
        assert "'business_cost' is not a built-in metric" in message
        assert '"greater_is_better": true (higher is better) or false (lower is better)' in message
        custom = GatePolicy.from_dict({"metrics": {"business_cost": {"threshold": 100, "greater_is_better": False}}})
        assert custom.metrics["business_cost"].greater_is_better is False

    def test_a_misspelt_metric_suggests_the_builtin(self) -> None:
        suggestion = r"'acuracy' is not a built-in metric \(did you mean the built-in 'accuracy'\?\)"
        with pytest.raises(ValueError, match=suggestion):
            GatePolicy.from_dict({"metrics": {"acuracy": {"threshold": 0.9}}})

    def test_a_misspelt_key_is_named_with_its_metric(self) -> None:
        with pytest.raises(ValueError) as excinfo:
            GatePolicy.from_dict({"metrics": {"rmse": {"treshold": 50}}})
        message = str(excinfo.value)
        assert message.startswith("GatePolicy.metrics['rmse']: MetricThreshold has unknown keys 'treshold'")
        assert message.endswith("refusing to guess what they mean. Did you mean 'threshold' for 'treshold'?")

    def test_a_threshold_given_as_a_string_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"metrics\['accuracy'\]: MetricThreshold.threshold must be a number, "
                           r"got the string '0.9': write it without quotes"):
            GatePolicy.from_dict({"metrics": {"accuracy": {"threshold": "0.9"}}})

    def test_decide_refuses_a_rule_without_a_direction(self) -> None:
        """A policy whose direction was forced away after construction cannot slip a default through."""
        policy = GatePolicy(metrics={"accuracy": MetricThreshold(threshold=0.9)}, require_data_expectations=False)
        object.__setattr__(policy, "metrics", {"accuracy": MetricThreshold(threshold=0.9)})
        with pytest.raises(ValueError, match="no direction"):
            decide(policy, make_evidence(), NOW)


# ============================================================================================
# Approval
# ============================================================================================


class TestApproval:
    def test_required_but_missing_fails(self) -> None:
        verdict = decide(full_policy(), make_evidence(approval=None), NOW)
        check = named(verdict, "approval")
        assert not check.passed and "no human approval" in check.reason
        assert failed_names(verdict) == ["approval"]

    def test_not_required_and_missing_is_fine(self) -> None:
        verdict = decide(full_policy(require_approval=False), make_evidence(approval=None), NOW)
        assert verdict.passed
        assert "approval" not in names(verdict)

    def test_approved_reason_names_approver_and_time(self) -> None:
        check = named(decide(full_policy(), make_evidence(), NOW), "approval")
        assert check.passed
        assert check.reason == "approved by alice at 2025-01-15 11:00:00 UTC: 'looks good'"

    @pytest.mark.parametrize("required", [True, False])
    def test_rejection_fails_with_approver_and_comment(self, required: bool) -> None:
        approval = make_approval(approved=False, approver="bob", comment="recall too low\non fraud rings")
        verdict = decide(full_policy(require_approval=required), make_evidence(approval=approval), NOW)
        check = named(verdict, "approval")
        assert not check.passed
        assert check.reason == "rejected by bob at 2025-01-15 11:00:00 UTC: 'recall too low on fraud rings'"

    def test_rejection_by_unknown_approver(self) -> None:
        approval = make_approval(approved=False, approver=None, comment=None)
        check = named(decide(full_policy(), make_evidence(approval=approval), NOW), "approval")
        assert not check.passed and check.reason.startswith("rejected by an unknown approver")

    def test_approval_without_approver_cannot_be_attributed(self) -> None:
        check = named(
            decide(full_policy(), make_evidence(approval=make_approval(approver=None)), NOW), "approval"
        )
        assert not check.passed
        assert "no approver is recorded" in check.reason

    def test_approval_for_another_version_fails(self) -> None:
        verdict = decide(full_policy(), make_evidence(approval=make_approval(model_version="2")), NOW)
        assert failed_names(verdict) == ["binding:approval"]
        assert "approval" not in names(verdict)

    def test_approval_that_names_no_version_says_so(self) -> None:
        verdict = decide(full_policy(), make_evidence(approval=make_approval(model_version=None)), NOW)
        assert verdict.passed
        assert "binding:approval" not in names(verdict)
        assert "does not name a model version" in named(verdict, "approval").reason


# ============================================================================================
# Property-style checks: fail closed under removal, corruption and stricter policies
# ============================================================================================


def _drop_metric(evidence: Evidence, metric: str, champion: bool = False) -> Evidence:
    evaluation = evidence.evaluation
    if evaluation is None:
        return evidence
    if champion:
        if evaluation.champion_metrics is None:
            return evidence
        remaining = {k: v for k, v in evaluation.champion_metrics.items() if k != metric}
        return replace(evidence, evaluation=replace(evaluation, champion_metrics=remaining))
    remaining = {k: v for k, v in evaluation.metrics.items() if k != metric}
    return replace(evidence, evaluation=replace(evaluation, metrics=remaining))


def _drop_expectation(evidence: Evidence, dataset: str) -> Evidence:
    kept = tuple(item for item in evidence.data_expectations if item.dataset != dataset)
    return replace(evidence, data_expectations=kept)


def _drop_scenario(evidence: Evidence, scenario: str) -> Evidence:
    run = evidence.scenarios
    if run is None:
        return evidence
    return replace(
        evidence, scenarios=replace(run, results={k: v for k, v in run.results.items() if k != scenario})
    )


def _drop_field(evidence: Evidence, piece: str, field: str) -> Evidence:
    value = getattr(evidence, piece)
    return evidence if value is None else replace(evidence, **{piece: replace(value, **{field: None})})


def _drop_champion(evidence: Evidence) -> Evidence:
    evaluation = evidence.evaluation
    if evaluation is None:
        return evidence
    return replace(evidence, evaluation=replace(evaluation, champion_version=None, champion_metrics=None))


#: Each removes one piece of evidence the full policy requires.
REMOVALS: dict[str, Callable[[Evidence], Evidence]] = {
    "evaluation": lambda e: replace(e, evaluation=None),
    "scenarios": lambda e: replace(e, scenarios=None),
    "approval": lambda e: replace(e, approval=None),
    "all expectations": lambda e: replace(e, data_expectations=()),
    "expectation raw": lambda e: _drop_expectation(e, "raw"),
    "expectation features": lambda e: _drop_expectation(e, "features"),
    "metric accuracy": lambda e: _drop_metric(e, "accuracy"),
    "metric loss": lambda e: _drop_metric(e, "loss"),
    "champion accuracy": lambda e: _drop_metric(e, "accuracy", champion=True),
    "champion loss": lambda e: _drop_metric(e, "loss", champion=True),
    "champion": _drop_champion,
    "champion metrics": lambda e: _drop_field(e, "evaluation", "champion_metrics"),
    "scenario typical_benign": lambda e: _drop_scenario(e, "typical_benign"),
    "training fingerprint raw": lambda e: replace(e, training_dataset_fingerprints=(FEATURES_FP,)),
    "evaluation fingerprint": lambda e: _drop_field(e, "evaluation", "model_fingerprint"),
    "scenario fingerprint": lambda e: _drop_field(e, "scenarios", "model_fingerprint"),
    "subject fingerprint": lambda e: replace(e, subject=replace(e.subject, model_fingerprint=None)),
    "raw dataset fingerprint": lambda e: replace(
        e, data_expectations=tuple(replace(i, dataset_fingerprint=None) for i in e.data_expectations)
    ),
    "approver": lambda e: _drop_field(e, "approval", "approver"),
}

#: Each makes one piece of evidence bad without removing anything.
CORRUPTIONS: dict[str, Callable[[Evidence], Evidence]] = {
    "low accuracy": lambda e: replace(e, evaluation=make_evaluation(metrics={"accuracy": 0.5, "loss": 0.2})),
    "nan loss": lambda e: replace(
        e, evaluation=make_evaluation(metrics={"accuracy": 0.95, "loss": math.nan})
    ),
    "regression": lambda e: replace(
        e,
        evaluation=make_evaluation(
            metrics={"accuracy": 0.91, "loss": 0.2}, champion_metrics={"accuracy": 0.99}
        ),
    ),
    "failed scenario": lambda e: replace(e, scenarios=make_scenarios(results={"typical_benign": False})),
    "failed suite": lambda e: replace(e, data_expectations=(make_expectation(success=False),)),
    "empty suite": lambda e: replace(e, data_expectations=(make_expectation(expectation_count=0),)),
    "stale evaluation": lambda e: replace(e, evaluation=make_evaluation(recorded_at=NOW - timedelta(days=9))),
    "future scenarios": lambda e: replace(e, scenarios=make_scenarios(recorded_at=NOW + timedelta(hours=1))),
    "wrong version": lambda e: replace(e, evaluation=make_evaluation(model_version="2")),
    "rejected": lambda e: replace(e, approval=make_approval(approved=False)),
    "problem": lambda e: replace(e, problems=("record unreadable",)),
}


class TestFailClosedProperties:
    def test_the_base_case_passes(self) -> None:
        assert decide(full_policy(), make_evidence(), NOW).passed

    @pytest.mark.parametrize("removal", list(REMOVALS))
    def test_removing_any_single_piece_turns_a_pass_into_a_failure(self, removal: str) -> None:
        verdict = decide(full_policy(), REMOVALS[removal](make_evidence()), NOW)
        assert not verdict.passed, f"removing {removal} still passed:\n{verdict.to_table()}"
        assert verdict.failures and all(item.reason for item in verdict.failures)

    def test_removing_any_pair_of_pieces_never_passes(self) -> None:
        for first, second in itertools.permutations(REMOVALS, 2):
            evidence = REMOVALS[second](REMOVALS[first](make_evidence()))
            assert not decide(full_policy(), evidence, NOW).passed, (first, second)

    def test_removing_random_sets_of_pieces_never_passes(self) -> None:
        rng = random.Random(20250115)
        keys = list(REMOVALS)
        # Dropping the artifact fingerprint on *every* side leaves a consistent version-only binding,
        # which the design accepts; any other set of removals must fail.
        fingerprints_only = {"subject fingerprint", "evaluation fingerprint", "scenario fingerprint"}
        for _ in range(400):
            chosen = rng.sample(keys, rng.randint(1, len(keys)))
            if fingerprints_only >= set(chosen) and len(chosen) == 3:
                continue
            evidence = make_evidence()
            for key in chosen:
                evidence = REMOVALS[key](evidence)
            assert not decide(full_policy(), evidence, NOW).passed, chosen

    @pytest.mark.parametrize("corruption", list(CORRUPTIONS))
    def test_each_corruption_fails_and_no_removal_rescues_it(self, corruption: str) -> None:
        corrupted = CORRUPTIONS[corruption](make_evidence())
        assert not decide(full_policy(), corrupted, NOW).passed, corruption
        for removal, remove in REMOVALS.items():
            assert not decide(full_policy(), remove(corrupted), NOW).passed, (corruption, removal)

    @pytest.mark.parametrize("corruption", [name for name in CORRUPTIONS if name != "regression"])
    def test_corrupt_present_evidence_fails_even_under_the_most_lenient_policy(self, corruption: str) -> None:
        """Present evidence is always checked, whatever the policy requires."""
        lenient = GatePolicy(
            # (loss is lower-is-better: with the old default of "higher" for every metric, this policy
            # failed every candidate on loss, and so passed this test for the wrong reason)
            metrics={
                "accuracy": MetricThreshold(threshold=0.9),
                "loss": MetricThreshold(threshold=0.3, greater_is_better=False),
            },
            require_data_expectations=False,
            require_scenarios=False,
            first_version=FirstVersionRule.ALLOW,
            max_evidence_age=timedelta(days=1),
        )
        assert not decide(lenient, CORRUPTIONS[corruption](make_evidence()), NOW).passed

    def test_any_problem_fails_any_evidence(self) -> None:
        for removal in [None, *REMOVALS]:
            evidence = make_evidence() if removal is None else REMOVALS[removal](make_evidence())
            evidence = replace(evidence, problems=(*evidence.problems, "x"))
            assert not decide(full_policy(), evidence, NOW).passed

    def test_a_stricter_policy_never_passes_where_a_laxer_one_fails(self) -> None:
        """Each policy knob only adds checks or turns passes into failures."""
        knobs: dict[str, tuple[Any, Any]] = {
            "require_data_expectations": (False, True),
            "required_suites": ((), ("raw_suite", "features_suite")),
            "require_scenarios": (False, True),
            "required_scenarios": ((), ("typical_benign", "account_takeover")),
            "first_version": (FirstVersionRule.ALLOW, FirstVersionRule.BLOCK),
            "max_evidence_age": (None, timedelta(hours=2)),
            "require_approval": (False, True),
        }
        metric_levels = [
            {"accuracy": MetricThreshold(threshold=0.5)},
            {"accuracy": MetricThreshold(threshold=0.9, min_absolute_change=-0.01)},
            {
                "accuracy": MetricThreshold(
                    threshold=0.9, min_absolute_change=-0.01, min_relative_change=0.0
                ),
                "loss": MetricThreshold(threshold=0.3, greater_is_better=False),
            },
        ]
        evidences = [make_evidence()]
        evidences += [remove(make_evidence()) for remove in REMOVALS.values()]
        evidences += [corrupt(make_evidence()) for corrupt in CORRUPTIONS.values()]
        evidences += [_age_everything(make_evidence(), NOW - timedelta(hours=3))]
        evidences += [_drop_champion(make_evidence())]
        names_ = list(knobs)
        rng = random.Random(7)
        compared = 0
        for _ in range(300):
            lax_bits = [rng.random() < 0.5 for _ in names_]
            strict_bits = [bit or rng.random() < 0.5 for bit in lax_bits]
            lax_level = rng.randrange(len(metric_levels))
            strict_level = rng.randrange(lax_level, len(metric_levels))

            def build(bits: list[bool], level: int) -> GatePolicy:
                values = {name: knobs[name][int(bit)] for name, bit in zip(names_, bits, strict=True)}
                return GatePolicy(metrics=metric_levels[level], **values)

            lax, strict = build(lax_bits, lax_level), build(strict_bits, strict_level)
            for evidence in evidences:
                if decide(strict, evidence, NOW).passed:
                    compared += 1
                    assert decide(lax, evidence, NOW).passed, (lax.to_dict(), strict.to_dict())
        assert compared > 0

    @pytest.mark.parametrize("greater_is_better", [True, False])
    def test_threshold_agrees_with_its_definition_on_a_grid(self, greater_is_better: bool) -> None:
        grid = [-1.0, -1e-9, 0.0, 1e-9, 0.5, 0.8999, 0.9, 0.9001, 1.0, 1e6]
        for value, bound in itertools.product(grid + [math.nan, math.inf, -math.inf], grid):
            rule = MetricThreshold(threshold=bound, greater_is_better=greater_is_better)
            verdict = _metric_verdict(rule, value)
            if not math.isfinite(value):
                expected = False
            else:
                expected = value >= bound if greater_is_better else value <= bound
            assert verdict.passed is expected, (value, bound, verdict.to_table())

    @pytest.mark.parametrize("greater_is_better", [True, False])
    @pytest.mark.parametrize("kind", ["absolute", "relative"])
    def test_change_agrees_with_its_definition_on_a_grid(self, kind: str, greater_is_better: bool) -> None:
        values = [-2.0, -0.5, 0.0, 0.5, 0.9, 0.905, 1.0, 3.0]
        requirements = [-0.5, -0.01, 0.0, 0.01, 0.5]
        sign = 1.0 if greater_is_better else -1.0
        for value, champion, required in itertools.product(values, values, requirements):
            if kind == "absolute":
                rule = MetricThreshold(min_absolute_change=required, greater_is_better=greater_is_better)
                expected = (Fraction(str(value)) - Fraction(str(champion))) * int(sign) >= Fraction(
                    str(required)
                )
            else:
                rule = MetricThreshold(min_relative_change=required, greater_is_better=greater_is_better)
                diff = (Fraction(str(value)) - Fraction(str(champion))) * int(sign)
                if champion == 0:
                    expected = diff > 0 or (diff == 0 and required <= 0)
                else:
                    expected = diff / abs(Fraction(str(champion))) >= Fraction(str(required))
            verdict = _metric_verdict(rule, value, champion)
            assert verdict.passed is expected, (value, champion, required, verdict.to_table())

    def test_random_evidence_keeps_every_invariant(self) -> None:
        rng = random.Random(1234)
        for _ in range(600):
            policy = _random_policy(rng)
            evidence = _random_evidence(rng)
            verdict = decide(policy, evidence, NOW)
            # passed is exactly "some checks and none failed"
            assert verdict.passed == (bool(verdict.checks) and all(c.passed for c in verdict.checks))
            assert verdict.checks, "a valid policy always yields at least one check"
            assert all(c.reason.strip() for c in verdict.checks)
            # records survive strict JSON and rebuild identically
            assert Verdict.from_dict(json_round_trip(verdict.to_dict())) == verdict
            assert GatePolicy.from_dict(json_round_trip(policy.to_dict())) == policy
            assert json_round_trip(Evidence.from_dict(json_round_trip(evidence.to_dict())).to_dict()) == (
                json_round_trip(evidence.to_dict())
            )
            # rendering
            summary = verdict.summary()
            assert "\n" not in summary
            assert summary.startswith(f"gate {'PASSED' if verdict.passed else 'FAILED'} for models:/fraud/")
            assert len(verdict.to_table().splitlines()) >= len(verdict.checks) + 4
            # fail-closed oracles
            if verdict.passed:
                _assert_pass_is_justified(policy, evidence)


def _assert_pass_is_justified(policy: GatePolicy, evidence: Evidence) -> None:
    """Independent restatement of what a pass implies."""
    subject = evidence.subject
    assert not evidence.problems
    if policy.require_data_expectations:
        assert evidence.data_expectations
    for item in evidence.data_expectations:
        assert item.success and item.expectation_count > 0 and not item.failures
        assert item.model_version == subject.model_version or (
            item.model_version is None and item.dataset_fingerprint in evidence.training_dataset_fingerprints
        )
    passed_suites = {item.suite_name for item in evidence.data_expectations}
    assert set(policy.required_suites) <= passed_suites
    run = evidence.scenarios
    if policy.require_scenarios or policy.required_scenarios:
        assert run is not None
    if run is not None:
        assert run.results and all(run.results.values())
        assert run.model_version == subject.model_version
        assert run.model_fingerprint == subject.model_fingerprint
        assert set(policy.required_scenarios) <= set(run.results)
    if policy.metrics or evidence.evaluation is not None:
        evaluation = evidence.evaluation
        if policy.metrics:
            assert evaluation is not None
        if evaluation is not None:
            assert evaluation.model_version == subject.model_version
            assert evaluation.model_fingerprint == subject.model_fingerprint
            for name, rule in policy.metrics.items():
                value = evaluation.metrics[name]
                assert math.isfinite(value)
                if rule.threshold is not None:
                    assert value >= rule.threshold if rule.greater_is_better else value <= rule.threshold
                if rule.min_absolute_change is not None or rule.min_relative_change is not None:
                    if evaluation.champion_version is None:
                        assert policy.first_version is FirstVersionRule.ALLOW
                        assert evaluation.champion_metrics is None
                    else:
                        assert evaluation.champion_metrics is not None
                        assert math.isfinite(evaluation.champion_metrics[name])
                        assert evaluation.champion_version != subject.model_version
    for moment in _times(evidence):
        assert moment - NOW <= CLOCK_SKEW_TOLERANCE
        if policy.max_evidence_age is not None:
            assert NOW - moment <= policy.max_evidence_age
    if policy.require_approval:
        assert evidence.approval is not None
    if evidence.approval is not None:
        assert evidence.approval.approved and evidence.approval.approver
        assert evidence.approval.model_version in (None, subject.model_version)


def _times(evidence: Evidence) -> list[datetime]:
    times = [item.recorded_at for item in evidence.data_expectations]
    if evidence.evaluation is not None:
        times.append(evidence.evaluation.recorded_at)
    if evidence.scenarios is not None:
        times.append(evidence.scenarios.recorded_at)
    if evidence.approval is not None:
        times.append(evidence.approval.decided_at)
    return times


def _random_time(rng: random.Random) -> datetime:
    return NOW - rng.choice(
        [
            timedelta(minutes=5),
            timedelta(hours=1),
            timedelta(days=2),
            -timedelta(minutes=3),
            -timedelta(hours=1),
        ]
    )


def _random_policy(rng: random.Random) -> GatePolicy:
    while True:
        metrics: dict[str, MetricThreshold] = {}
        for name in rng.sample(["accuracy", "loss", "auc"], rng.randint(0, 3)):
            fields = {
                "threshold": rng.choice([None, 0.0, 0.5, 0.9]),
                "min_absolute_change": rng.choice([None, -0.05, 0.0, 0.01]),
                "min_relative_change": rng.choice([None, -0.1, 0.0, 0.05]),
            }
            if all(value is None for value in fields.values()):
                fields["threshold"] = 0.5
            metrics[name] = MetricThreshold(**fields, greater_is_better=name != "loss")
        try:
            return GatePolicy(
                metrics=metrics,
                require_data_expectations=rng.random() < 0.5,
                required_suites=tuple(rng.sample(["raw_suite", "features_suite"], rng.randint(0, 1))),
                require_scenarios=rng.random() < 0.5,
                required_scenarios=tuple(rng.sample(["typical_benign", "fraud_ring"], rng.randint(0, 1))),
                first_version=rng.choice(list(FirstVersionRule)),
                max_evidence_age=rng.choice([None, timedelta(days=1)]),
                require_approval=rng.random() < 0.3,
            )
        except ValueError:
            continue  # a policy that checks nothing; draw again


def _random_evidence(rng: random.Random) -> Evidence:
    version = rng.choice(["3", "3", "3", "2"])
    fingerprint = rng.choice([MODEL_FP, MODEL_FP, None, "sha256:other"])
    subject_fp = rng.choice([MODEL_FP, MODEL_FP, None])
    expectations = tuple(
        make_expectation(
            dataset=rng.choice(["raw", "features"]),
            dataset_fingerprint=rng.choice([RAW_FP, FEATURES_FP, None, "blake3:other"]),
            suite_name=rng.choice(["raw_suite", "features_suite"]),
            success=rng.random() < 0.8,
            expectation_count=rng.choice([0, 3, 12]),
            failures=rng.choice([(), (), ("x",)]),
            model_version=rng.choice([None, None, "3", "2"]),
            recorded_at=_random_time(rng),
        )
        for _ in range(rng.randint(0, 3))
    )
    metric_value = lambda: rng.choice([0.0, 0.2, 0.5, 0.91, 0.95, math.nan, math.inf])  # noqa: E731
    evaluation = None
    if rng.random() < 0.8:
        champion_version = rng.choice([None, "2", "3"])
        champion_metrics = rng.choice(
            [None, {}, {"accuracy": metric_value(), "loss": metric_value(), "auc": metric_value()}]
        )
        evaluation = make_evaluation(
            model_version=version,
            model_fingerprint=fingerprint,
            metrics={
                name: metric_value() for name in rng.sample(["accuracy", "loss", "auc"], rng.randint(0, 3))
            },
            champion_version=champion_version,
            champion_metrics=champion_metrics,
            recorded_at=_random_time(rng),
        )
    scenarios = None
    if rng.random() < 0.8:
        results = {
            name: rng.random() < 0.85
            for name in rng.sample(["typical_benign", "fraud_ring"], rng.randint(0, 2))
        }
        scenarios = make_scenarios(
            model_version=version,
            model_fingerprint=fingerprint,
            results=results,
            recorded_at=_random_time(rng),
        )
    approval = None
    if rng.random() < 0.5:
        approval = make_approval(
            approved=rng.random() < 0.8,
            approver=rng.choice(["alice", None]),
            decided_at=_random_time(rng),
            model_version=rng.choice([None, "3", "2"]),
        )
    return Evidence(
        subject=make_subject(model_fingerprint=subject_fp),
        training_dataset_fingerprints=tuple(rng.sample([RAW_FP, FEATURES_FP], rng.randint(0, 2))),
        data_expectations=expectations,
        evaluation=evaluation,
        scenarios=scenarios,
        approval=approval,
        problems=rng.choice([(), (), (), ("unreadable",)]),
    )
