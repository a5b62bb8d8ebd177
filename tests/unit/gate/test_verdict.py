"""Unit tests for gate/verdict.py: a verdict's consistency, serialisation and rendering."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from airflow_ml_provider.gate import Check, Subject, Verdict, decide
from tests.support import (
    MODEL_FP,
    NOW,
    full_policy,
    json_round_trip,
    loose,
    make_approval,
    make_evaluation,
    make_evidence,
    make_scenarios,
    make_subject,
)

# ============================================================================================
# Verdict: consistency, serialisation, rendering
# ============================================================================================


def _failing_verdict() -> Verdict:
    run = make_scenarios(
        results={"typical_benign": True, "fraud_ring": False}, reasons={"fraud_ring": "missed 3"}
    )
    evaluation = make_evaluation(
        metrics={"accuracy": 0.81, "loss": 0.2}, champion_metrics={"accuracy": 0.8, "loss": 0.25}
    )
    return decide(full_policy(), make_evidence(evaluation=evaluation, scenarios=run), NOW)


class TestVerdict:
    def test_round_trip_through_json(self) -> None:
        for verdict in (decide(full_policy(), make_evidence(), NOW), _failing_verdict()):
            assert Verdict.from_dict(json_round_trip(verdict.to_dict())) == verdict

    def test_a_forged_pass_is_refused(self) -> None:
        data = _failing_verdict().to_dict()
        data["passed"] = True
        with pytest.raises(ValueError, match="inconsistent verdict"):
            Verdict.from_dict(data)

    def test_a_pass_without_checks_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no checks cannot pass"):
            Verdict(make_subject(), True, (), NOW, {})

    def test_a_failure_without_checks_is_allowed_and_says_so(self) -> None:
        verdict = Verdict(make_subject(), False, (), NOW, {})
        assert verdict.summary() == "gate FAILED for models:/fraud/3: no checks were made"
        assert "(no checks were made)" in verdict.to_table()

    def test_a_false_fail_is_refused_too(self) -> None:
        with pytest.raises(ValueError, match="inconsistent verdict"):
            Verdict(make_subject(), False, (Check("approval", True, "ok"),), NOW, {})

    def test_policy_must_be_json_safe_and_is_copied(self) -> None:
        with pytest.raises(ValueError, match="JSON-safe"):
            Verdict(make_subject(), False, (), NOW, {"x": math.nan})
        with pytest.raises(ValueError, match="JSON-safe"):
            Verdict(make_subject(), False, (), NOW, {"x": object()})
        policy = {"a": [1]}
        verdict = Verdict(make_subject(), False, (), NOW, policy)
        policy["a"].append(2)
        assert verdict.policy == {"a": [1]}

    @pytest.mark.parametrize(
        ("build", "match"),
        [
            (lambda: Check("", True, "x"), "Check.name"),
            (lambda: Check("a", loose("yes"), "x"), "Check.passed"),
            (lambda: Check("a", True, loose(None)), "Check.reason"),
            (lambda: Verdict(loose(make_subject().to_dict()), False, (), NOW, {}), "subject"),
            (lambda: Verdict(make_subject(), False, loose(({"name": "a"},)), NOW, {}), "Check objects"),
            (lambda: Verdict(make_subject(), False, (), NOW.replace(tzinfo=None), {}), "decided_at"),
            (lambda: Verdict(make_subject(), False, (), NOW, loose([])), "policy"),
        ],
    )
    def test_malformed_verdicts_are_refused(self, build: Callable[[], Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            build()

    def test_failures_property(self) -> None:
        verdict = _failing_verdict()
        assert [item.name for item in verdict.failures] == [
            "scenario:fraud_ring",
            "metric:accuracy:threshold",
        ]
        assert all(not item.passed for item in verdict.failures)

    def test_summary_of_a_failure(self) -> None:
        verdict = _failing_verdict()
        assert verdict.summary() == (
            f"gate FAILED for models:/fraud/3: 2 of {len(verdict.checks)} checks failed: "
            "scenario:fraud_ring (missed 3); "
            "metric:accuracy:threshold (accuracy 0.810 is below the minimum 0.900 (higher is better))"
        )

    def test_summary_of_a_pass(self) -> None:
        verdict = decide(full_policy(), make_evidence(), NOW)
        assert (
            verdict.summary() == f"gate PASSED for models:/fraud/3: all {len(verdict.checks)} checks passed"
        )

    def test_summary_is_one_line_even_with_multi_line_reasons(self) -> None:
        approval = make_approval(approved=False, comment="line one\nline two\r\n\tline three")
        verdict = decide(full_policy(), make_evidence(approval=approval), NOW)
        assert "\n" not in verdict.summary() and "\r" not in verdict.summary()
        assert "'line one line two line three'" in verdict.summary()

    def test_table_layout(self) -> None:
        verdict = _failing_verdict()
        lines = verdict.to_table().splitlines()
        assert (
            lines[0]
            == f"gate FAILED for models:/fraud/3, artifact {MODEL_FP}, decided 2025-01-15T12:00:00+00:00"
        )
        width = max(len(item.name) for item in verdict.checks)
        assert lines[1] == f"{'CHECK'.ljust(width)}  RESULT  REASON"
        assert lines[2].startswith("-" * width + "  ------  ---")
        rows = {line.split()[0]: line for line in lines[3:-1] if not line.startswith(" ")}
        assert set(rows) == {item.name for item in verdict.checks}
        for item in verdict.checks:
            row = rows[item.name]
            assert row[width + 2 : width + 8].strip() == ("PASS" if item.passed else "FAIL")
            assert row[width + 10 :].startswith(item.reason[:20])
        assert lines[-1] == f"2 of {len(verdict.checks)} checks failed"

    def test_table_wraps_long_reasons_under_the_reason_column(self) -> None:
        long = "word " * 60
        verdict = Verdict(
            make_subject(), False, (Check("approval", False, long), Check("x", True, "ok")), NOW, {}
        )
        lines = verdict.to_table().splitlines()
        width = len("approval")
        continuation = [line for line in lines if line.startswith(" " * (width + 10))]
        assert continuation, verdict.to_table()
        assert all(len(line) <= 120 for line in lines)
        assert " ".join(verdict.to_table().split()).count("word") == 60

    def test_table_fits_in_120_columns_with_long_names_and_reasons(self) -> None:
        """The Airflow log viewer shows ~120 columns: nothing may run past them, and nothing is lost."""
        name = "binding:expectations:features of file:///data/warehouse/some/long/path/features.parquet"
        reason = "rmse 64.982 vs champion v10 53.458: worse by 11.525; the policy requires no worse " * 3
        checks = (
            Check("metric:rmse:vs_champion_absolute", False, reason),
            Check(name, True, "suite 'raw' validated data blake3:" + "a" * 64),
            Check("x", True, "ok"),
        )
        subject = Subject("a_rather_long_registered_model_name", "12", "sha256:" + "f" * 64)
        table = Verdict(subject, False, checks, NOW, {}).to_table()
        lines = table.splitlines()
        assert max(len(line) for line in lines) <= 120, table
        assert " ".join(table.split()).count("worse by 11.525") == 3
        assert "sha256:" + "f" * 64 in table  # the header wraps, it does not cut
        # the long name continues in its column on the next line(s), whole
        start = next(i for i, line in enumerate(lines) if line.startswith(name[:40]))
        assert lines[start][:40] + lines[start + 1][:40] + lines[start + 2][:40].rstrip() == name

    def test_table_ends_with_all_passed_for_a_pass(self) -> None:
        verdict = decide(full_policy(), make_evidence(), NOW)
        table = verdict.to_table()
        assert table.splitlines()[-1] == f"all {len(verdict.checks)} checks passed"
        assert "FAIL" not in table
