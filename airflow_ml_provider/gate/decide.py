"""
``decide(policy, evidence, now) -> Verdict``: the gate's judgement, a pure function.

No I/O and no clock: ``now`` is an argument so a verdict can be reproduced from its record.
Fail closed: anything missing, stale, unbound, ambiguous, NaN or infinite becomes a failed check
with a reason a person understands; the verdict passes only with at least one check and no
failures. Evidence that is present is always checked, even where the policy does not require it
(a rejected approval or a failed scenario is never ignored).

Check names:

- ``evidence:problem``             a gathering problem reported by the I/O side
- ``expectations``                 data expectation evidence present (when required)
- ``binding:expectations:<ds>``    the result is about this model's data
- ``freshness:expectations:<ds>``  recorded recently enough / not in the future
- ``expectations:<ds>``            the suite passed and was not empty
- ``suite:<name>``                 a required suite passed
- ``scenarios`` / ``binding:scenarios`` / ``freshness:scenarios`` / ``scenario:<name>``
- ``evidence:evaluation`` / ``binding:evaluation`` / ``freshness:evaluation``
- ``metric:<m>`` (missing or non-finite), ``metric:<m>:threshold``,
  ``metric:<m>:vs_champion_absolute``, ``metric:<m>:vs_champion_relative``
- ``approval`` / ``binding:approval`` / ``freshness:approval``
- ``shadow:rows`` (enough production rows compared against the current champion, or the first-version rule),
  ``binding:shadow``, ``freshness:shadow``, ``shadow:errors`` (the candidate failed on production inputs),
  ``shadow:task`` (mixed kinds of evidence), ``shadow:agreement`` / ``shadow:mean_abs_delta``,
  ``shadow:latency_ratio``
- ``policy``                       written by the sensor, not here: the rendered policy is invalid, so
  no evidence was read

Every metric check's reason says which way is better ("rmse 53.46 is above the maximum 50.00
(lower is better)"); the direction is the policy's, resolved from the built-in metric table.

Checks that read the content of a piece of evidence are skipped when that evidence is not bound
to the subject: its binding check has already failed the gate, and "PASS" rows about another
model's evidence would only mislead the reader.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from fractions import Fraction

from airflow_ml_provider.gate.evidence import (
    ApprovalEvidence,
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    ScenarioEvidence,
    ShadowEvidence,
    ShadowEvidenceSet,
    Subject,
)
from airflow_ml_provider.gate.policy import FirstVersionRule, GatePolicy, MetricThreshold, ShadowRule
from airflow_ml_provider.gate.verdict import Check, Verdict
from airflow_ml_provider.model.metrics import direction_words
from airflow_ml_provider.parsing import to_utc

__all__ = ["CLOCK_SKEW_TOLERANCE", "decide"]

#: Evidence recorded further in the future than this is refused (clock skew or a forged record).
CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)

#: How many expectation failures are quoted in a reason before "and N more".
_MAX_QUOTED_FAILURES = 5


def decide(policy: GatePolicy, evidence: Evidence, now: datetime) -> Verdict:
    """Judge ``evidence`` against ``policy`` at time ``now`` (timezone-aware); pure, no I/O."""
    if not isinstance(policy, GatePolicy):
        raise TypeError(f"policy must be a GatePolicy, got {type(policy).__name__}")
    if not isinstance(evidence, Evidence):
        raise TypeError(f"evidence must be an Evidence, got {type(evidence).__name__}")
    now = to_utc(now, "now")
    checks: list[Check] = []
    checks.extend(_problem_checks(evidence))
    checks.extend(_expectation_checks(policy, evidence, now))
    checks.extend(_scenario_checks(policy, evidence, now))
    checks.extend(_metric_checks(policy, evidence, now))
    checks.extend(_approval_checks(policy, evidence, now))
    checks.extend(_shadow_checks(policy, evidence, now))
    passed = bool(checks) and all(item.passed for item in checks)
    return Verdict(
        subject=evidence.subject,
        passed=passed,
        checks=tuple(checks),
        decided_at=now,
        policy=policy.to_dict(),
    )


# --------------------------------------------------------------------------------------------
# Formatting: reasons carry the numbers, readable but never hiding a difference.
# --------------------------------------------------------------------------------------------


def _exact(value: float, signed: bool) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return ("+inf" if signed else "inf") if value > 0 else "-inf"
    text = repr(float(value))
    return f"+{text}" if signed and value >= 0 else text


def _numbers(*values: float, signed: bool = False) -> tuple[str, ...]:
    """
    Three decimals read best in a log; when they would hide a difference between the numbers
    shown side by side (0.8996 vs 0.9 as "0.900 < 0.900") or a tiny/huge magnitude, fall back to
    the shortest exact form.
    """
    values = tuple(value + 0.0 for value in values)  # -0.0 -> 0.0, so a zero change never shows "-"
    fixed = tuple(format(value, "+.3f" if signed else ".3f") for value in values)
    readable = all(math.isfinite(value) and (value == 0 or 1e-3 <= abs(value) < 1e12) for value in values)
    distinct = all(
        fixed[i] != fixed[j]
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if values[i] != values[j]
    )
    if readable and distinct:
        return fixed
    return tuple(_exact(value, signed) for value in values)


def _duration(delta: timedelta) -> str:
    """'2d 3h', '4m 5s', '0s': the two leading units of an age."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    for index, (amount, unit) in enumerate(units):
        if amount:
            parts = [f"{amount}{unit}"]
            if index + 1 < len(units) and units[index + 1][0]:
                parts.append(f"{units[index + 1][0]}{units[index + 1][1]}")
            return " ".join(parts)
    return "0s"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _as_written(value: float) -> Fraction:
    """
    The exact value of a number's shortest decimal form: changes are computed on the numbers as a
    person reads them, so 0.3 vs 0.2 is a change of exactly 0.1 (in floats, 0.09999999999999998
    would fail a required +0.1).
    """
    return Fraction(repr(float(value)))


def _to_float(value: Fraction) -> float:
    """For display only; a change too large for a float shows as an infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _champion_label(version: str) -> str:
    return f"champion v{version}" if version.isdigit() else f"champion {version!r}"


# --------------------------------------------------------------------------------------------
# Shared checks: binding and freshness
# --------------------------------------------------------------------------------------------


def _model_binding(kind: str, subject: Subject, version: str, fingerprint: str | None) -> Check:
    """Evaluation/scenario evidence must name the subject's version and, where known, its artifact."""
    name = f"binding:{kind}"
    if version != subject.model_version:
        return Check(
            name,
            False,
            f"{kind} evidence is for model version {version!r}, "
            f"not version {subject.model_version!r} under decision",
        )
    expected = subject.model_fingerprint
    if expected is not None and fingerprint is not None:
        if expected != fingerprint:
            return Check(
                name,
                False,
                f"artifact mismatch: {kind} evidence was made with artifact {fingerprint}, "
                f"but version {version} under decision is artifact {expected}",
            )
        return Check(name, True, f"{kind} evidence names version {version} and artifact {expected}")
    if expected is None and fingerprint is None:
        return Check(
            name,
            True,
            f"{kind} evidence names version {version}; no artifact fingerprint on either side, "
            "bound by version only",
        )
    if expected is None:
        return Check(
            name,
            False,
            f"cannot verify the artifact: {kind} evidence records artifact {fingerprint}, "
            "but the model under decision has no fingerprint",
        )
    return Check(
        name,
        False,
        f"cannot verify the artifact: the model under decision is artifact {expected}, "
        f"but the {kind} evidence records no fingerprint",
    )


def _freshness(name: str, recorded_at: datetime, now: datetime, max_age: timedelta | None) -> Check | None:
    """Refuse future-dated evidence always, and old evidence when the policy sets a maximum age."""
    ahead = recorded_at - now
    if ahead > CLOCK_SKEW_TOLERANCE:
        return Check(
            name,
            False,
            f"recorded {_duration(ahead)} in the future ({_when(recorded_at)}), beyond the "
            f"{_duration(CLOCK_SKEW_TOLERANCE)} clock-skew tolerance: clock skew or a forged record",
        )
    if max_age is None:
        return None
    age = now - recorded_at
    if age > max_age:
        return Check(
            name,
            False,
            f"stale: recorded {_duration(age)} ago ({_when(recorded_at)}), "
            f"older than the {_duration(max_age)} limit",
        )
    if age < timedelta(0):
        return Check(
            name,
            True,
            f"recorded {_duration(age)} in the future ({_when(recorded_at)}), within the "
            f"{_duration(CLOCK_SKEW_TOLERANCE)} clock-skew tolerance",
        )
    return Check(name, True, f"recorded {_duration(age)} ago, within the {_duration(max_age)} limit")


# --------------------------------------------------------------------------------------------
# Problems reported by the gathering side
# --------------------------------------------------------------------------------------------


def _problem_checks(evidence: Evidence) -> list[Check]:
    return [
        Check(
            "evidence:problem",
            False,
            problem if problem.strip() else "a gathering problem was reported without a description",
        )
        for problem in evidence.problems
    ]


# --------------------------------------------------------------------------------------------
# Data expectations
# --------------------------------------------------------------------------------------------


def _expectation_binding(item: ExpectationEvidence, evidence: Evidence) -> Check:
    """Bound by naming the subject's version, or (pre-training data) by a training data fingerprint."""
    subject = evidence.subject
    name = f"binding:expectations:{item.dataset}"
    what = f"suite {item.suite_name!r} on dataset {item.dataset!r}"
    if item.model_version is not None:
        if item.model_version != subject.model_version:
            return Check(
                name,
                False,
                f"{what} was recorded for model version {item.model_version!r}, "
                f"not version {subject.model_version!r} under decision",
            )
        return Check(name, True, f"{what} names version {subject.model_version}")
    if item.dataset_fingerprint is None:
        return Check(
            name,
            False,
            f"{what} names neither a model version nor a dataset fingerprint: "
            "cannot tell which data was validated",
        )
    if item.dataset_fingerprint not in evidence.training_dataset_fingerprints:
        trained_on = ", ".join(evidence.training_dataset_fingerprints) or "none recorded"
        return Check(
            name,
            False,
            f"{what} validated data {item.dataset_fingerprint}, which is not among the datasets "
            f"version {subject.model_version} was trained on ({trained_on})",
        )
    return Check(
        name,
        True,
        f"{what} validated data {item.dataset_fingerprint}, which version "
        f"{subject.model_version} was trained on",
    )


def _expectation_content(item: ExpectationEvidence) -> Check:
    name = f"expectations:{item.dataset}"
    what = f"suite {item.suite_name!r} on {item.dataset!r}"
    count = item.expectation_count
    if count == 0:
        return Check(name, False, f"{what} has no expectations: an empty suite proves nothing")
    if item.failures:
        quoted = "; ".join(item.failures[:_MAX_QUOTED_FAILURES])
        more = len(item.failures) - _MAX_QUOTED_FAILURES
        if more > 0:
            quoted += f"; and {more} more"
        if item.success:
            return Check(
                name,
                False,
                f"{what} reports success but lists {len(item.failures)} failure(s): ambiguous: {quoted}",
            )
        return Check(
            name, False, f"{what} failed: {len(item.failures)} of {count} expectations failed: {quoted}"
        )
    if not item.success:
        return Check(name, False, f"{what} failed ({count} expectations; no failure details recorded)")
    return Check(name, True, f"{what}: all {count} expectations passed")


def _expectation_checks(policy: GatePolicy, evidence: Evidence, now: datetime) -> list[Check]:
    checks: list[Check] = []
    present = evidence.data_expectations
    if policy.require_data_expectations:
        if present:
            checks.append(Check("expectations", True, f"{len(present)} data expectation result(s) present"))
        else:
            checks.append(
                Check(
                    "expectations",
                    False,
                    "no data expectation evidence: the policy requires at least one validated dataset",
                )
            )
    passed_on: dict[str, list[str]] = {}
    for item in present:
        binding = _expectation_binding(item, evidence)
        checks.append(binding)
        fresh = _freshness(
            f"freshness:expectations:{item.dataset}", item.recorded_at, now, policy.max_evidence_age
        )
        if fresh is not None:
            checks.append(fresh)
        if not binding.passed:
            continue
        content = _expectation_content(item)
        checks.append(content)
        if content.passed and (fresh is None or fresh.passed):
            passed_on.setdefault(item.suite_name, []).append(item.dataset)
    for suite in policy.required_suites:
        name = f"suite:{suite}"
        if suite in passed_on:
            checks.append(
                Check(name, True, f"required suite {suite!r} passed on {', '.join(passed_on[suite])}")
            )
        elif any(item.suite_name == suite for item in present):
            checks.append(
                Check(
                    name,
                    False,
                    f"required suite {suite!r} was run but did not pass "
                    "(see its expectations/binding/freshness checks)",
                )
            )
        else:
            checks.append(Check(name, False, f"required suite {suite!r} was not run on any dataset"))
    return checks


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


def _scenario_checks(policy: GatePolicy, evidence: Evidence, now: datetime) -> list[Check]:
    run: ScenarioEvidence | None = evidence.scenarios
    required = policy.require_scenarios or bool(policy.required_scenarios)
    if run is None:
        if not required:
            return []
        listed = f" (including {', '.join(policy.required_scenarios)})" if policy.required_scenarios else ""
        return [
            Check(
                "scenarios",
                False,
                f"no scenario evidence: the policy requires a must-pass scenario run{listed}",
            )
        ]
    checks = [_model_binding("scenarios", evidence.subject, run.model_version, run.model_fingerprint)]
    fresh = _freshness("freshness:scenarios", run.recorded_at, now, policy.max_evidence_age)
    if fresh is not None:
        checks.append(fresh)
    if not checks[0].passed:
        return checks
    results: Mapping[str, bool] = run.results
    if not results:
        checks.append(
            Check("scenarios", False, "the scenario run contains no scenarios: an empty run proves nothing")
        )
    else:
        failed = sum(1 for value in results.values() if value is not True)
        checks.append(
            Check("scenarios", True, f"{len(results)} scenario(s) run, {len(results) - failed} passed")
        )
    for scenario, result in results.items():
        reason = run.reasons.get(scenario, "").strip()
        if result is True:
            checks.append(Check(f"scenario:{scenario}", True, reason or "passed"))
        else:
            checks.append(Check(f"scenario:{scenario}", False, reason or "failed (no reason recorded)"))
    for scenario in policy.required_scenarios:
        if scenario not in results:
            checks.append(
                Check(
                    f"scenario:{scenario}",
                    False,
                    f"scenario {scenario!r} is listed in the policy but was not run",
                )
            )
    return checks


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _greater_is_better(rule: MetricThreshold) -> bool:
    """A rule inside a GatePolicy always has its direction; refuse to decide on one that does not."""
    if rule.greater_is_better is None:
        raise ValueError("a metric rule has no direction: build rules through GatePolicy, which resolves it")
    return rule.greater_is_better


def _threshold_check(metric: str, rule: MetricThreshold, value: float) -> Check:
    assert rule.threshold is not None
    bound = rule.threshold
    greater = _greater_is_better(rule)
    shown_value, shown_bound = _numbers(value, bound)
    if greater:
        passed = value >= bound
        relation = "is at or above the minimum" if passed else "is below the minimum"
    else:
        passed = value <= bound
        relation = "is at or below the maximum" if passed else "is above the maximum"
    return Check(
        f"metric:{metric}:threshold",
        passed,
        f"{metric} {shown_value} {relation} {shown_bound} ({direction_words(greater)})",
    )


def _change_words(change: float, required: float, relative: bool) -> str:
    """'worse by 11.525; the policy requires no worse': the change and the requirement in words."""
    shown_change, shown_required = _numbers(abs(change), abs(required))
    of = " of the champion's value" if relative else ""
    if change > 0:
        moved = f"better by {shown_change}{of}"
    elif change < 0:
        moved = f"worse by {shown_change}{of}"
    else:
        moved = "no change"
    if required > 0:
        allowed = f"the policy requires better by at least {shown_required}"
    elif required < 0:
        allowed = f"the policy allows worse by at most {shown_required}"
    else:
        allowed = "the policy requires no worse"
    return f"{moved}; {allowed}"


def _champion_check(
    kind: str,
    metric: str,
    rule: MetricThreshold,
    value: float,
    evaluation: EvaluationEvidence,
    policy: GatePolicy,
    subject: Subject,
) -> Check:
    """Compare with the champion (``kind`` is 'absolute' or 'relative'), or apply the first-version rule."""
    name = f"metric:{metric}:vs_champion_{kind}"
    required = rule.min_absolute_change if kind == "absolute" else rule.min_relative_change
    assert required is not None
    champion_version = evaluation.champion_version
    champion_metrics = evaluation.champion_metrics
    if champion_version is None:
        if champion_metrics is not None:
            return Check(
                name,
                False,
                "champion metrics are recorded without a champion version: cannot tell what was compared",
            )
        if policy.first_version is FirstVersionRule.ALLOW:
            return Check(name, True, "no champion: first-version rule 'allow'")
        return Check(name, False, "no champion to compare against: first-version rule 'block'")
    label = _champion_label(champion_version)
    if champion_version == subject.model_version:
        return Check(
            name,
            False,
            f"the recorded champion is version {champion_version} itself: a model cannot be compared "
            "with itself",
        )
    if champion_metrics is None:
        return Check(name, False, f"{label} is named but no champion metrics were recorded")
    if metric not in champion_metrics:
        have = ", ".join(sorted(champion_metrics)) or "none"
        return Check(name, False, f"{label} has no recorded {metric!r} (has: {have})")
    champion = champion_metrics[metric]
    if not isinstance(champion, (int, float)) or isinstance(champion, bool) or not math.isfinite(champion):
        return Check(name, False, f"{label} {metric} is {champion!r}: not a finite number, cannot compare")
    greater = _greater_is_better(rule)
    diff = (_as_written(value) - _as_written(champion)) * (1 if greater else -1)
    note = ""
    if kind == "absolute":
        passed = diff >= _as_written(required)
        change = _to_float(diff)
    elif champion == 0:
        if diff > 0:
            passed, change = True, math.inf
            note = " (champion is 0: any improvement is an unbounded relative gain)"
        elif diff == 0:
            passed, change = required <= 0, 0.0
            note = " (candidate and champion are both 0: no change)"
        else:
            passed, change = False, -math.inf
            note = " (champion is 0: any regression is an unbounded relative loss)"
    else:
        ratio = diff / abs(_as_written(champion))
        passed = ratio >= _as_written(required)
        change = _to_float(ratio)
    shown_value, shown_champion = _numbers(value, champion)
    words = _change_words(change, required, relative=kind == "relative")
    return Check(
        name,
        passed,
        f"{metric} {shown_value} vs {label} {shown_champion}: {words}{note} ({direction_words(greater)})",
    )


def _metric_checks(policy: GatePolicy, evidence: Evidence, now: datetime) -> list[Check]:
    evaluation = evidence.evaluation
    subject = evidence.subject
    if evaluation is None:
        if not policy.metrics:
            return []
        return [
            Check(
                "evidence:evaluation",
                False,
                f"no evaluation evidence for {subject.uri}: the policy checks {', '.join(policy.metrics)}",
            )
        ]
    checks: list[Check] = []
    if policy.metrics:
        checks.append(
            Check(
                "evidence:evaluation",
                True,
                f"evaluation of version {evaluation.model_version} with {len(evaluation.metrics)} metric(s), "
                f"recorded {_when(evaluation.recorded_at)}",
            )
        )
    binding = _model_binding("evaluation", subject, evaluation.model_version, evaluation.model_fingerprint)
    checks.append(binding)
    fresh = _freshness("freshness:evaluation", evaluation.recorded_at, now, policy.max_evidence_age)
    if fresh is not None:
        checks.append(fresh)
    if not binding.passed:
        return checks
    for metric, rule in policy.metrics.items():
        if metric not in evaluation.metrics:
            have = ", ".join(sorted(evaluation.metrics)) or "none"
            checks.append(
                Check(
                    f"metric:{metric}",
                    False,
                    f"metric {metric!r} is missing from the evaluation of version "
                    f"{evaluation.model_version} (has: {have})",
                )
            )
            continue
        value = evaluation.metrics[metric]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            checks.append(Check(f"metric:{metric}", False, f"{metric} is {value!r}: not a finite number"))
            continue
        if rule.threshold is not None:
            checks.append(_threshold_check(metric, rule, value))
        if rule.min_absolute_change is not None:
            checks.append(_champion_check("absolute", metric, rule, value, evaluation, policy, subject))
        if rule.min_relative_change is not None:
            checks.append(_champion_check("relative", metric, rule, value, evaluation, policy, subject))
    return checks


# --------------------------------------------------------------------------------------------
# Human approval
# --------------------------------------------------------------------------------------------


def _approval_checks(policy: GatePolicy, evidence: Evidence, now: datetime) -> list[Check]:
    approval: ApprovalEvidence | None = evidence.approval
    if approval is None:
        if policy.require_approval:
            return [Check("approval", False, "no human approval recorded: the policy requires one")]
        return []
    checks: list[Check] = []
    version = evidence.subject.model_version
    if approval.model_version is not None:
        if approval.model_version != version:
            checks.append(
                Check(
                    "binding:approval",
                    False,
                    f"the approval is for model version {approval.model_version!r}, "
                    f"not version {version!r} under decision",
                )
            )
        else:
            checks.append(Check("binding:approval", True, f"the approval names version {version}"))
    fresh = _freshness("freshness:approval", approval.decided_at, now, policy.max_evidence_age)
    if fresh is not None:
        checks.append(fresh)
    if checks and not checks[0].passed and checks[0].name == "binding:approval":
        return checks
    comment = (
        f": {' '.join(approval.comment.split())!r}" if approval.comment and approval.comment.strip() else ""
    )
    when = _when(approval.decided_at)
    if not approval.approved:
        who = approval.approver or "an unknown approver"
        checks.append(Check("approval", False, f"rejected by {who} at {when}{comment}"))
    elif approval.approver is None:
        checks.append(
            Check(
                "approval",
                False,
                f"approved at {when} but no approver is recorded: "
                "the decision cannot be attributed to a person",
            )
        )
    else:
        unbound = (
            "" if approval.model_version is not None else " (the approval does not name a model version)"
        )
        checks.append(Check("approval", True, f"approved by {approval.approver} at {when}{comment}{unbound}"))
    return checks


# --------------------------------------------------------------------------------------------
# Shadow evidence: the candidate and the champion on production inputs
# --------------------------------------------------------------------------------------------

#: How many runs a reason names before "and N more".
_MAX_QUOTED_RUNS = 3


def _runs(items: Sequence[ShadowEvidence]) -> str:
    quoted = ", ".join(f"{item.run_id} ({item.source})" for item in items[:_MAX_QUOTED_RUNS])
    more = len(items) - _MAX_QUOTED_RUNS
    return quoted + (f" and {more} more" if more > 0 else "")


def _no_champion(policy: GatePolicy, shadow: ShadowEvidenceSet) -> Check:
    """No champion at all: nothing can have been shadowed; only the first-version rule lets it through."""
    unset = f"no champion (alias {shadow.champion_alias!r} is unset), so no production traffic to shadow"
    if policy.first_version is FirstVersionRule.ALLOW:
        return Check("shadow:rows", True, f"{unset}: passed by the first-version rule 'allow'")
    return Check("shadow:rows", False, f"{unset}: failed by the first-version rule 'block'")


def _counted(
    items: Sequence[ShadowEvidence], subject: Subject, champion: str, now: datetime, max_age: timedelta | None
) -> tuple[list[Check], dict[str, ShadowEvidence], list[str], list[ShadowEvidence]]:
    """
    The binding and freshness failures, the evidence counted (one per input: the one with the most rows,
    then the newest), notes on what was not counted and why, and the pieces whose candidate failed.
    """
    checks: list[Check] = []
    counted: dict[str, ShadowEvidence] = {}
    stale: dict[str, int] = {}
    old: list[ShadowEvidence] = []
    errors: list[ShadowEvidence] = []
    bound = 0
    for item in items:
        binding = _model_binding("shadow", subject, item.candidate_version, item.candidate_fingerprint)
        if not binding.passed:
            checks.append(Check(binding.name, False, f"run {item.run_id} ({item.source}): {binding.reason}"))
            continue
        bound += 1
        future = _freshness("freshness:shadow", item.recorded_at, now, None)
        if future is not None:
            checks.append(Check(future.name, False, f"run {item.run_id} ({item.source}): {future.reason}"))
            continue
        if item.champion_version != champion:
            stale[item.champion_version] = stale.get(item.champion_version, 0) + 1
            continue
        if max_age is not None and now - item.recorded_at > max_age:
            old.append(item)
            continue
        if item.error is not None:
            errors.append(item)
            continue
        if item.rows == 0:
            continue
        key = item.input_fingerprint or f"run:{item.run_id}"
        held = counted.get(key)
        if held is None or (item.rows, item.recorded_at) > (held.rows, held.recorded_at):
            counted[key] = item
    if bound and not checks:
        checks.append(
            Check("binding:shadow", True, f"{bound} piece(s) of shadow evidence name version {subject.model_version}")
        )
    notes = [
        f"{count} piece(s) against champion v{version} not counted: stale, the champion is now v{champion}"
        for version, count in sorted(stale.items())
    ]
    if old and max_age is not None:
        notes.append(f"{len(old)} piece(s) older than the {_duration(max_age)} limit not counted")
    return checks, counted, notes, errors


def _weighted(items: Sequence[ShadowEvidence], name: str) -> float | None:
    """The row-weighted mean of a figure over the counted inputs; None when any input lacks it."""
    weighted = 0.0
    for item in items:
        value: float | None = getattr(item, name)
        if value is None:
            return None
        weighted += value * item.rows
    return weighted / sum(item.rows for item in items)


def _shadow_figure_check(rule: ShadowRule, items: Sequence[ShadowEvidence], task: str) -> Check:
    """``shadow:agreement`` (classification) or ``shadow:mean_abs_delta`` (regression), against the rule's kind."""
    if rule.min_agreement is not None:
        name, figure, bound = "shadow:agreement", "agreement", rule.min_agreement
    else:
        assert rule.max_mean_abs_delta is not None
        name, figure, bound = "shadow:mean_abs_delta", "mean_abs_delta", rule.max_mean_abs_delta
    if task != rule.task:
        key = "min_agreement" if rule.min_agreement is not None else "max_mean_abs_delta"
        return Check(
            name,
            False,
            f"the policy sets {key}, a {rule.task} threshold, but the shadow evidence is about a {task} model: "
            f"set {'max_mean_abs_delta' if key == 'min_agreement' else 'min_agreement'} instead",
        )
    value = _weighted(items, figure)
    if value is None:
        return Check(name, False, f"{figure} is not recorded for every compared input: cannot judge it")
    if not math.isfinite(value):
        return Check(name, False, f"{figure} is {_exact(value, False)}: not a finite number (a NaN prediction?)")
    rows = sum(item.rows for item in items)
    if figure == "agreement":
        passed = value >= bound
        words = "at or above" if passed else "below"
        return Check(
            name, passed, f"agreement with the champion {value:.2%} on {rows} rows is {words} the minimum {bound:.2%}"
        )
    passed = value <= bound
    shown_value, shown_bound = _numbers(value, bound)
    words = "at or below" if passed else "above"
    return Check(name, passed, f"mean |delta| {shown_value} on {rows} rows is {words} the maximum {shown_bound}")


def _latency_check(rule: ShadowRule, items: Sequence[ShadowEvidence]) -> Check | None:
    if rule.max_latency_ratio is None:
        return None
    primary, shadow = _weighted(items, "primary_ms_per_1k_rows"), _weighted(items, "shadow_ms_per_1k_rows")
    name = "shadow:latency_ratio"
    if primary is None or shadow is None:
        return Check(name, False, "latency is not recorded for every compared input: cannot judge it")
    if not (math.isfinite(primary) and math.isfinite(shadow)) or primary <= 0:
        return Check(name, False, f"latencies {shadow!r} vs {primary!r} ms per 1,000 rows cannot be compared")
    ratio = shadow / primary
    passed = ratio <= rule.max_latency_ratio
    shown_ratio, shown_bound = _numbers(ratio, rule.max_latency_ratio)
    return Check(
        name,
        passed,
        f"the candidate takes {shadow:.3g} ms per 1,000 rows, the champion {primary:.3g}: ratio {shown_ratio} is "
        f"{'at or below' if passed else 'above'} the maximum {shown_bound}",
    )


def _shadow_checks(policy: GatePolicy, evidence: Evidence, now: datetime) -> list[Check]:
    rule = policy.shadow
    if rule is None:
        return []
    shadow = evidence.shadow
    subject = evidence.subject
    if shadow is None:
        return [
            Check(
                "shadow:rows",
                False,
                "no shadow evidence was gathered: the policy's shadow rule needs the candidate's runs against "
                "the champion (gather with the champion's alias)",
            )
        ]
    champion = shadow.champion_version
    if champion is None:
        return [_no_champion(policy, shadow)]
    if champion == subject.model_version:
        return [Check("shadow:rows", False, f"version {champion} is the champion itself: it cannot shadow itself")]
    checks, counted, notes, errors = _counted(shadow.items, subject, champion, now, policy.max_evidence_age)
    if errors:
        checks.append(
            Check(
                "shadow:errors",
                False,
                f"the candidate failed on production inputs in {len(errors)} run(s): {_runs(errors)}: "
                f"{' '.join((errors[0].error or '').split())[:300]}",
            )
        )
    items = sorted(counted.values(), key=lambda item: item.recorded_at)
    rows = sum(item.rows for item in items)
    sources = sorted({item.source for item in items})
    note = f" ({'; '.join(notes)})" if notes else ""
    if not items:
        checks.append(
            Check(
                "shadow:rows",
                False,
                f"no recorded traffic: no production rows compared against champion v{champion}; shadow the "
                f"candidate in the champion's predictions or replay them, at least {rule.min_rows} rows{note}",
            )
        )
        return checks
    checks.append(
        Check(
            "shadow:rows",
            rows >= rule.min_rows,
            f"{rows} rows on {len(items)} production input(s) ({', '.join(sources)}) compared against champion "
            f"v{champion}; the policy requires at least {rule.min_rows}{note}",
        )
    )
    tasks = sorted({item.task for item in items if item.task is not None})
    if len(tasks) != 1:
        checks.append(Check("shadow:task", False, f"the shadow evidence mixes kinds of model: {tasks or 'none'}"))
        return checks
    checks.append(_shadow_figure_check(rule, items, tasks[0]))
    latency = _latency_check(rule, items)
    if latency is not None:
        checks.append(latency)
    return checks
