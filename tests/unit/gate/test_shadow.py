"""The gate's ``shadow`` rule: strict policy, evidence round trips, and ``decide`` failing closed on shadow evidence
(no traffic, stale champion, unbound or future-dated pieces, a failing candidate, the wrong kind of threshold)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from airflow_ml_provider.gate import Evidence, GatePolicy, decide
from airflow_ml_provider.gate.evidence import ShadowEvidence, ShadowEvidenceSet
from airflow_ml_provider.gate.policy import ShadowRule, is_number_field
from tests.support import MODEL_FP, NOW, RECENT, failed_names, json_round_trip, make_evidence, named


def piece(**overrides: Any) -> ShadowEvidence:
    values: dict[str, Any] = {
        "source": "live",
        "run_id": "run-1",
        "candidate_version": "3",
        "candidate_fingerprint": MODEL_FP,
        "champion_version": "2",
        "input_fingerprint": "blake3:batch-1",
        "task": "classification",
        "rows": 100,
        "agreement": 0.97,
        "mean_abs_delta": None,
        "primary_ms_per_1k_rows": 10.0,
        "shadow_ms_per_1k_rows": 12.0,
        "error": None,
        "recorded_at": RECENT,
    }
    values.update(overrides)
    return ShadowEvidence(**values)


def evidence(*items: ShadowEvidence, champion: str | None = "2") -> Evidence:
    return make_evidence(shadow=ShadowEvidenceSet("champion", champion, items))


def policy(**rule: Any) -> GatePolicy:
    values: dict[str, Any] = {"min_rows": 150, "min_agreement": 0.95, "max_latency_ratio": 1.5}
    values.update(rule)
    first = values.pop("first_version", "block")
    age = values.pop("max_evidence_age", None)
    return GatePolicy(
        require_data_expectations=False,
        require_scenarios=False,
        first_version=first,
        max_evidence_age=age,
        shadow=ShadowRule(**{k: v for k, v in values.items() if v is not None}),
    )


def reason(verdict: Any, name: str) -> str:
    return str(named(verdict, name).reason)


# --- policy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"min_rows": 10, "min_agreement": 0.9, "max_mean_abs_delta": 0.1}, "exactly one of .* got both"),
        ({"min_rows": 10}, "got neither"),
        ({"min_rows": 0, "min_agreement": 0.9}, "min_rows must be >= 1"),
        ({"min_rows": 10.0, "min_agreement": 0.9}, "min_rows must be an integer"),
        ({"min_rows": True, "min_agreement": 0.9}, "min_rows must be an integer"),
        ({"min_rows": 10, "min_agreement": 1.2}, r"in \[0, 1\]"),
        ({"min_rows": 10, "min_agreement": math.nan}, "finite"),
        ({"min_rows": 10, "max_mean_abs_delta": -1.0}, ">= 0"),
        ({"min_rows": 10, "max_mean_abs_delta": math.inf}, "finite"),
        ({"min_rows": 10, "min_agreement": 0.9, "max_latency_ratio": 0}, "> 0"),
        ({"min_rows": 10, "min_agreement": "0.9"}, "write it unquoted"),
    ],
)
def test_a_malformed_shadow_rule_is_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GatePolicy.from_dict({"shadow": rule})


def test_unknown_shadow_keys_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="GatePolicy.shadow: .*Did you mean 'min_agreement'"):
        GatePolicy.from_dict({"shadow": {"min_rows": 10, "min_agreement": 0.9, "min_agrement": 0.8}})


def test_the_shadow_rule_round_trips_and_a_policy_without_it_keeps_its_shape() -> None:
    rule = {"min_rows": 10, "max_mean_abs_delta": 2}
    shadowed = GatePolicy.from_dict({"require_data_expectations": False, "require_scenarios": False, "shadow": rule})
    assert shadowed.shadow == ShadowRule(10, max_mean_abs_delta=2.0) and shadowed.shadow.task == "regression"
    assert GatePolicy.from_dict(json_round_trip(shadowed.to_dict())) == shadowed
    assert "shadow" not in GatePolicy().to_dict()
    assert is_number_field(("shadow", "min_agreement")) and not is_number_field(("shadow", "nope"))


def test_a_policy_checking_only_shadow_evidence_is_a_policy() -> None:
    assert policy().shadow is not None  # "checks nothing" is not raised


# --- evidence -----------------------------------------------------------------------------------------


def test_shadow_evidence_round_trips_through_strict_json_with_nan() -> None:
    original = evidence(piece(agreement=math.nan), piece(source="replay", error="boom", rows=0, task=None))
    again = Evidence.from_dict(json_round_trip(original.to_dict()))
    assert again.shadow is not None and math.isnan(again.shadow.items[0].agreement or 0.0)
    assert again.shadow.items[1] == original.shadow.items[1]  # type: ignore[union-attr]
    assert "shadow" not in make_evidence().to_dict()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"source": "batch"}, "source must be one of"), ({"rows": -1}, "rows must be >= 0"), ({"task": "rank"}, "task")],
)
def test_malformed_shadow_evidence_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        piece(**overrides)


# --- decide -----------------------------------------------------------------------------------------------


def test_enough_agreeing_rows_pass() -> None:
    verdict = decide(policy(), evidence(piece(), piece(run_id="run-2", input_fingerprint="blake3:batch-2")), NOW)
    assert verdict.passed, verdict.summary()
    assert "200 rows on 2 production input(s) (live) compared against champion v2" in reason(verdict, "shadow:rows")
    assert "97.00% on 200 rows is at or above the minimum 95.00%" in reason(verdict, "shadow:agreement")
    assert "ratio 1.200 is at or below the maximum 1.500" in reason(verdict, "shadow:latency_ratio")


def test_too_few_rows_fail() -> None:
    verdict = decide(policy(), evidence(piece()), NOW)
    assert failed_names(verdict) == ["shadow:rows"]
    assert "requires at least 150" in reason(verdict, "shadow:rows")


def test_no_traffic_fails_closed_when_a_champion_exists() -> None:
    verdict = decide(policy(first_version="allow"), evidence(), NOW)
    assert failed_names(verdict) == ["shadow:rows"]
    assert reason(verdict, "shadow:rows").startswith("no recorded traffic")


def test_evidence_not_gathered_fails() -> None:
    verdict = decide(policy(), make_evidence(), NOW)
    assert failed_names(verdict) == ["shadow:rows"]
    assert "no shadow evidence was gathered" in reason(verdict, "shadow:rows")


@pytest.mark.parametrize(("rule", "passed"), [("allow", True), ("block", False)])
def test_no_champion_at_all_is_the_first_version_rule(rule: str, passed: bool) -> None:
    verdict = decide(policy(first_version=rule), evidence(champion=None), NOW)
    assert verdict.passed is passed
    assert f"first-version rule {rule!r}" in reason(verdict, "shadow:rows")


def test_the_candidate_cannot_be_its_own_champion() -> None:
    verdict = decide(policy(), evidence(piece(), champion="3"), NOW)
    assert "is the champion itself" in reason(verdict, "shadow:rows") and not verdict.passed


def test_evidence_against_another_champion_is_stale_and_not_counted() -> None:
    items = [piece(rows=200, champion_version="1"), piece(run_id="run-2", input_fingerprint="blake3:2")]
    verdict = decide(policy(), evidence(*items), NOW)
    assert failed_names(verdict) == ["shadow:rows"]
    assert "1 piece(s) against champion v1 not counted: stale, the champion is now v2" in reason(verdict, "shadow:rows")


def test_an_input_counts_once_whichever_runs_compared_it() -> None:
    live = piece(rows=100)
    replayed = piece(source="replay", run_id="run-9", rows=120, agreement=0.99)
    verdict = decide(policy(min_rows=200), evidence(live, replayed), NOW)
    assert failed_names(verdict) == ["shadow:rows"]
    assert "120 rows on 1 production input(s) (replay)" in reason(verdict, "shadow:rows")


def test_a_candidate_that_failed_on_production_inputs_fails() -> None:
    broken = piece(run_id="run-3", input_fingerprint="blake3:3", rows=0, task=None, agreement=None, error="boom")
    verdict = decide(policy(min_rows=100), evidence(piece(), broken), NOW)
    assert failed_names(verdict) == ["shadow:errors"]
    assert "failed on production inputs in 1 run(s): run-3 (live): boom" in reason(verdict, "shadow:errors")


@pytest.mark.parametrize(
    ("overrides", "check", "words"),
    [
        ({"candidate_version": "4"}, "binding:shadow", "not version '3' under decision"),
        ({"candidate_fingerprint": "blake3:other"}, "binding:shadow", "artifact mismatch"),
        ({"recorded_at": NOW + timedelta(hours=1)}, "freshness:shadow", "in the future"),
    ],
)
def test_unbound_or_future_evidence_fails(overrides: dict[str, Any], check: str, words: str) -> None:
    verdict = decide(policy(min_rows=100), evidence(piece(), piece(run_id="x", **overrides)), NOW)
    assert check in failed_names(verdict) and words in reason(verdict, check)


def test_evidence_older_than_the_limit_is_not_counted() -> None:
    old = piece(run_id="old", input_fingerprint="blake3:old", recorded_at=NOW - timedelta(days=3))
    verdict = decide(policy(max_evidence_age=timedelta(days=1)), evidence(piece(rows=160), old), NOW)
    assert verdict.passed, verdict.summary()
    assert "1 piece(s) older than the 1d limit not counted" in reason(verdict, "shadow:rows")


def test_low_agreement_fails_naming_the_figure() -> None:
    verdict = decide(policy(min_rows=100), evidence(piece(agreement=0.6)), NOW)
    assert failed_names(verdict) == ["shadow:agreement"]
    assert "60.00% on 100 rows is below the minimum 95.00%" in reason(verdict, "shadow:agreement")


def regression(**overrides: Any) -> ShadowEvidence:
    return piece(**{"task": "regression", "agreement": None, "mean_abs_delta": 0.5, **overrides})


@pytest.mark.parametrize(("delta", "passed"), [(0.5, True), (2.5, False)])
def test_regression_is_judged_by_the_mean_absolute_difference(delta: float, passed: bool) -> None:
    rule = {"min_rows": 100, "min_agreement": None, "max_mean_abs_delta": 1.0}
    verdict = decide(policy(**rule), evidence(regression(mean_abs_delta=delta)), NOW)
    assert verdict.passed is passed
    assert named(verdict, "shadow:mean_abs_delta").passed is passed


def test_a_threshold_of_the_other_kind_fails() -> None:
    verdict = decide(policy(min_rows=100), evidence(regression()), NOW)
    assert failed_names(verdict) == ["shadow:agreement"]
    assert "min_agreement, a classification threshold" in reason(verdict, "shadow:agreement")
    rule = {"min_rows": 100, "min_agreement": None, "max_mean_abs_delta": 1.0}
    verdict = decide(policy(**rule), evidence(piece()), NOW)
    assert "max_mean_abs_delta, a regression threshold" in reason(verdict, "shadow:mean_abs_delta")


def test_mixed_kinds_of_evidence_fail() -> None:
    verdict = decide(policy(min_rows=100), evidence(piece(), regression(run_id="r", input_fingerprint="b")), NOW)
    assert failed_names(verdict) == ["shadow:task"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"agreement": math.nan}, "not a finite number"),
        ({"agreement": None}, "not recorded for every compared input"),
    ],
)
def test_unjudgeable_figures_fail(overrides: dict[str, Any], words: str) -> None:
    verdict = decide(policy(min_rows=100), evidence(piece(**overrides)), NOW)
    assert words in reason(verdict, "shadow:agreement") and not verdict.passed


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"shadow_ms_per_1k_rows": 30.0}, "ratio 3.000 is above the maximum 1.500"),
        ({"shadow_ms_per_1k_rows": None}, "latency is not recorded"),
        ({"primary_ms_per_1k_rows": 0.0}, "cannot be compared"),
    ],
)
def test_latency_ratio_fails_when_slower_or_unknown(overrides: dict[str, Any], words: str) -> None:
    verdict = decide(policy(min_rows=100), evidence(piece(**overrides)), NOW)
    assert failed_names(verdict) == ["shadow:latency_ratio"] and words in reason(verdict, "shadow:latency_ratio")


def test_latency_is_not_checked_without_a_limit() -> None:
    verdict = decide(policy(min_rows=100, max_latency_ratio=None), evidence(piece(shadow_ms_per_1k_rows=None)), NOW)
    assert verdict.passed and "shadow:latency_ratio" not in [c.name for c in verdict.checks]


def test_removing_evidence_never_opens_a_closed_gate() -> None:
    """Fail closed: with a failing piece among them, no subset that keeps it passes, and neither does none."""
    bad = piece(run_id="3", input_fingerprint="b3", agreement=0.5)
    others = [piece(rows=150), piece(run_id="2", input_fingerprint="b2", rows=150)]
    rule = policy(min_rows=100)
    for kept in ([], [others[0]], [others[1]], others):
        assert not decide(rule, evidence(*kept, bad), NOW).passed
    assert not decide(rule, evidence(), NOW).passed
    assert not decide(rule, replace(evidence(*others), problems=("unreadable shadow record",)), NOW).passed


def test_a_waiting_gate_keeps_waiting_for_late_evidence_when_shadow_evidence_was_not_gathered() -> None:
    """The trigger gathers without the champion (completeness only): a shadow rule must not end the wait."""
    from airflow_ml_provider.gate import MetricThreshold
    from airflow_ml_provider.gate.gather import Gathered, waiting_for

    rule = replace(policy(), metrics={"accuracy": MetricThreshold(threshold=0.9)})
    pending = Gathered(make_evidence(evaluation=None), pending=("evaluate",))
    assert waiting_for(rule, pending, NOW) == ("evaluate",)
    assert waiting_for(policy(), Gathered(make_evidence(evaluation=None), pending=("evaluate",)), NOW) == ()
