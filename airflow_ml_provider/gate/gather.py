"""Gather the gate's evidence for one model version from MLflow (and a human approval from XCom).

Every piece is found through the model version's own tags (``airflow_ml.evidence.<step>`` -> the
MLflow run holding that step's record), never through task order and never by listing the
registry: one check costs a fixed number of queries whatever the number of versions. Anything that
cannot be read becomes a named problem, which the policy turns into a failed check: gathering
fails closed.

Shadow evidence is the exception that accumulates: every predict run in which the candidate shadowed the
champion and every replay step of the candidate counts, so it is found by searching step runs by tag
(``airflow_ml.shadow_model_version``; a shadow step's model), newest first and bounded by
:data:`SHADOW_RUNS` per kind: still a fixed number of queries.

Besides the evidence itself, :func:`gather` reports which pieces are *pending* (evaluation or
scenarios not written yet), so a waiting sensor or trigger can tell "not yet" from "bad".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.gate import (
    ApprovalEvidence,
    EvaluationEvidence,
    Evidence,
    ExpectationEvidence,
    GatePolicy,
    ScenarioEvidence,
    Subject,
    decide,
)
from airflow_ml_provider.gate.evidence import ShadowEvidence, ShadowEvidenceSet
from airflow_ml_provider.model import reference as models
from airflow_ml_provider.parsing import parse_time
from airflow_ml_provider.promotion.rule import PromotionResult
from airflow_ml_provider.records.step_record import (
    EvaluateResult,
    FeaturizeResult,
    PredictResult,
    RecordError,
    ShadowResult,
    SimulateResult,
    StepRecord,
    read_step_record,
)
from airflow_ml_provider.records.tags import (
    GATE_ABANDONED,
    TAG_ABANDONED_BY,
    TAG_FEATURES_FINGERPRINT,
    TAG_GATE_STATUS,
    TAG_MODEL_FINGERPRINT,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
    TAG_SHADOW_MODEL_VERSION,
    TAG_STEP,
    evidence_tag,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.monitoring.shadow import ShadowComparison, ShadowSummary

#: The evidence steps, in the order they are read.
STEPS = ("featurize", "evaluate", "simulate")
#: Steps that run after training and may legitimately not have written their evidence yet. The
#: featurize pointer is written by TrainOperator together with the version: absent means never.
LATE_STEPS = ("evaluate", "simulate")
#: The HITL option that means "approved" (``ApprovalOperator.APPROVE``).
APPROVE_OPTION = "Approve"
#: The HITL form field in which the approver names the model version they approve.
APPROVAL_VERSION_PARAM = "model_version"
#: Optional HITL form field for the approver's comment.
APPROVAL_COMMENT_PARAM = "comment"
#: At most this many of the newest runs of each kind of shadow evidence (live, replay) are read.
SHADOW_RUNS = 100

@dataclass(frozen=True)
class Gathered:
    """The evidence, and the late steps whose evidence is not there yet (``pending``)."""

    evidence: Evidence
    pending: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------
# Policy helpers shared by the sensor and the trigger (pure)
# ------------------------------------------------------------------------------------------------


def with_scenarios(policy: GatePolicy | Mapping[str, Any], scenario_names: Sequence[str] = ()) -> GatePolicy:
    """The policy with every scenario of the scenario file made required (listed but not run fails)."""
    policy = policy if isinstance(policy, GatePolicy) else GatePolicy.from_dict(policy)
    if not scenario_names:
        return policy
    required = tuple(dict.fromkeys((*policy.required_scenarios, *scenario_names)))
    return dataclasses.replace(policy, required_scenarios=required)


def required_steps(policy: GatePolicy) -> tuple[str, ...]:
    """The evidence steps the policy needs."""
    steps = []
    if policy.require_data_expectations or policy.required_suites:
        steps.append("featurize")
    if policy.metrics:
        steps.append("evaluate")
    if policy.require_scenarios or policy.required_scenarios:
        steps.append("simulate")
    return tuple(steps)


def waiting_for(policy: GatePolicy, gathered: Gathered, now: datetime) -> tuple[str, ...]:
    """
    The required steps worth waiting for: not written yet, while nothing already present fails.

    Empty means "decide now". Evidence that is present and failing is never waited on: the
    present evidence is judged under the policy minus the missing steps, and any failure there
    decides at once.
    """
    missing = tuple(step for step in required_steps(policy) if step in gathered.pending)
    if not missing:
        return ()
    changes: dict[str, Any] = {}
    if "evaluate" in missing:
        changes["metrics"] = {}
    if "simulate" in missing:
        changes.update(require_scenarios=False, required_scenarios=())
    if gathered.evidence.shadow is None:  # not gathered here (the trigger looks for completeness only)
        changes["shadow"] = None
    try:
        relaxed = dataclasses.replace(policy, **changes)
    except ValueError:  # the policy checks nothing else: judge only the gathering problems
        return () if gathered.evidence.problems else missing
    return missing if decide(relaxed, gathered.evidence, now).passed else ()


def needs_champion(policy: GatePolicy) -> bool:
    """Whether any metric rule compares with the champion, or the policy wants shadow evidence against it."""
    return policy.shadow is not None or any(
        rule.min_absolute_change is not None or rule.min_relative_change is not None for rule in policy.metrics.values()
    )


# ------------------------------------------------------------------------------------------------
# Gathering from MLflow
# ------------------------------------------------------------------------------------------------


def gather(
    hook: MlflowHook,
    ref: models.ModelRef,
    *,
    verify_artifact: bool = True,
    champion_alias: str | None = None,
    shadow: bool = False,
) -> Gathered:
    """
    Collect the evidence for ``ref``; raises only when the version itself cannot be read.

    :param verify_artifact: re-fingerprint the version's artifact and compare it with the
        fingerprint recorded at training (the bytes must not have changed since).
    :param champion_alias: when set, check that the champion the evaluation compared against is
        still the champion (not deleted, not moved), and that a missing champion really is a first
        version rather than a champion that was removed.
    :param shadow: with ``champion_alias``, also gather the shadow evidence of ``ref`` with the champion it
        would replace now (two run searches and a record per run found: only when the policy has a rule).
    """
    version = models.get_version(hook, ref)
    tags = version.tags
    subject = Subject(ref.name, ref.version, tags.get(TAG_MODEL_FINGERPRINT))
    problems: list[str] = []
    if tags.get(TAG_GATE_STATUS) == GATE_ABANDONED:
        problems.append(
            f"{ref.uri} was abandoned ({tags.get(TAG_ABANDONED_BY) or 'no reason recorded'}): the train attempt "
            "that registered it did not complete, so it is never gated; gate the version a completed attempt registered"
        )
    trained_on = [fp for fp in [tags.get(TAG_FEATURES_FINGERPRINT)] if fp]
    if not trained_on:
        problems.append(f"{ref.uri} has no recorded training features fingerprint (not trained by TrainOperator?)")
    if verify_artifact:
        problems += _verify_artifact(hook, version, subject)

    records: dict[str, StepRecord] = {}
    pending: list[str] = []
    for step in STEPS:
        run_id = tags.get(evidence_tag(step))
        if not run_id:
            if step in LATE_STEPS:
                pending.append(step)
            continue  # missing evidence: the policy names it
        try:
            record = read_step_record(hook, run_id)
        except RecordError as e:
            if step in LATE_STEPS and _still_running(hook, run_id):
                pending.append(step)  # the step has bound its run but not written its record yet
            else:
                problems.append(f"{step} evidence unreadable: {e}")
            continue
        if record.step != step:
            problems.append(f"{step} evidence points to MLflow run {run_id}, which holds a {record.step!r} record")
            continue
        if record.status != "success":
            problems.append(f"{step} evidence comes from a run that did not succeed ({record.status}: {record.error})")
            continue
        records[step] = record

    expectations: list[ExpectationEvidence] = []
    if "featurize" in records:
        expectations, fingerprints, expectation_problems = _expectations(records["featurize"])
        problems += expectation_problems
        if fingerprints.get("features") in trained_on:
            # raw data that produced the training features is part of what the model was trained on
            trained_on += [fp for role, fp in fingerprints.items() if role != "features"]
        else:
            problems.append(
                f"featurize evidence is for features {fingerprints.get('features')}, "
                f"but {ref.uri} was trained on {trained_on or 'unknown features'}"
            )

    evaluation = None
    if "evaluate" in records:
        try:
            evaluation, evaluation_problems = _evaluation(records["evaluate"])
        except (KeyError, TypeError, ValueError) as e:
            evaluation_problems = [f"evaluate evidence is malformed: {type(e).__name__}: {e}"]
        problems += evaluation_problems
        if evaluation is not None and champion_alias:
            problems += _champion_problems(hook, ref, champion_alias, evaluation, records["evaluate"])
    scenarios = None
    if "simulate" in records:
        try:
            scenarios = _scenarios(records["simulate"])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"simulate evidence is malformed: {type(e).__name__}: {e}")
    shadow_evidence = None
    if champion_alias and shadow:
        shadow_evidence, shadow_problems = _shadow(hook, ref, champion_alias)
        problems += shadow_problems
    evidence = Evidence(
        subject=subject,
        training_dataset_fingerprints=tuple(trained_on),
        data_expectations=tuple(expectations),
        evaluation=evaluation,
        scenarios=scenarios,
        problems=tuple(problems),
        shadow=shadow_evidence,
    )
    return Gathered(evidence, tuple(pending))


def _still_running(hook: MlflowHook, run_id: str) -> bool:
    try:
        return bool(hook.get_run(run_id).info.status == "RUNNING")
    except Exception:
        return False


def _recorded_at(record: StepRecord) -> datetime:
    """When the record was closed (parsed strictly when the record was read); unknown: stale for any max age."""
    return record.recorded_time or datetime.fromtimestamp(0, tz=timezone.utc)


def _expectations(
    record: StepRecord,
) -> tuple[list[ExpectationEvidence], dict[str, str], list[str]]:
    """Expectation evidence of a featurize record, the fingerprint of each dataset role, problems."""
    fingerprints = {str(d.get("role")): str(d.get("fingerprint")) for d in record.inputs + record.outputs}
    checks = record.results.expectations if isinstance(record.results, FeaturizeResult) else ()
    out, problems = [], []
    for check in checks:
        report = check.report
        try:
            out.append(
                ExpectationEvidence(
                    dataset=report.dataset,
                    dataset_fingerprint=fingerprints.get(check.role),
                    suite_name=report.suite_name,
                    success=report.success,
                    expectation_count=len(report.results),
                    failures=tuple(f"{r.expectation_type} on {r.column}" for r in report.failures),
                    model_version=None,
                    recorded_at=_recorded_at(record),
                )
            )
        except ValueError as e:
            problems.append(f"featurize evidence holds a malformed expectation report: {type(e).__name__}: {e}")
    return out, fingerprints, problems


def _model_of(record: StepRecord) -> tuple[str, str | None]:
    if record.model is None:
        raise ValueError(f"the {record.step} record of MLflow run {record.mlflow_run_id} names no model version")
    return record.model.version, record.model.fingerprint


def _evaluation(record: StepRecord) -> tuple[EvaluationEvidence, list[str]]:
    version, fingerprint = _model_of(record)
    result = record.results
    if not isinstance(result, EvaluateResult):
        raise ValueError(f"the evaluate record of MLflow run {record.mlflow_run_id} holds no evaluation")
    champion = result.champion
    problems = []
    if champion is not None and champion.error:
        problems.append(f"champion could not be evaluated: {champion.error}")
    evidence = EvaluationEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        metrics=result.metrics,
        champion_version=champion.version if champion is not None else None,
        champion_metrics=champion.metrics if champion is not None else None,
        recorded_at=_recorded_at(record),
    )
    return evidence, problems


def _scenarios(record: StepRecord) -> ScenarioEvidence:
    version, fingerprint = _model_of(record)
    results = record.results.scenarios.results if isinstance(record.results, SimulateResult) else ()
    return ScenarioEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        results={r.name: r.passed for r in results},
        reasons={r.name: r.reason for r in results},
        recorded_at=_recorded_at(record),
    )


# ------------------------------------------------------------------------------------------------
# Shadow evidence: live shadow predict runs and replay steps of the candidate
# ------------------------------------------------------------------------------------------------


def _shadow(hook: MlflowHook, ref: models.ModelRef, alias: str) -> tuple[ShadowEvidenceSet | None, list[str]]:
    """The candidate's shadow evidence and the current champion; anything unreadable is a problem."""
    try:
        champion = hook.alias_version(ref.name, alias)
    except Exception as e:
        return None, [f"cannot resolve the {alias!r} alias of {ref.name} to judge shadow evidence: {e}"]
    if champion is None:
        return ShadowEvidenceSet(alias, None, ()), []
    name = ref.name.replace("'", "\\'")
    finished = "attributes.status = 'FINISHED'"
    queries = {
        "live": f"tags.`{TAG_STEP}` = 'predict' and tags.`{TAG_MODEL_NAME}` = '{name}' "
        f"and tags.`{TAG_SHADOW_MODEL_VERSION}` = '{ref.version}' and {finished}",
        "replay": f"tags.`{TAG_STEP}` = 'shadow' and tags.`{TAG_MODEL_NAME}` = '{name}' "
        f"and tags.`{TAG_MODEL_VERSION}` = '{ref.version}' and {finished}",
    }
    items: list[ShadowEvidence] = []
    problems: list[str] = []
    try:
        experiments = hook.experiment_ids()
        runs = [
            (kind, run.info.run_id)
            for kind, query in queries.items()
            for run in hook.search_runs(
                experiments, query, order_by=["attributes.start_time DESC"], max_results=SHADOW_RUNS
            )
        ]
    except Exception as e:
        return None, [f"cannot search the shadow evidence of {ref.uri}: {type(e).__name__}: {e}"]
    for kind, run_id in runs:
        try:
            record = read_step_record(hook, run_id)
        except RecordError as e:
            problems.append(f"shadow evidence unreadable: {e}")
            continue
        if record.status != "success":
            continue  # a predict or replay step that failed as a whole recorded no comparison
        summary = _summary_of(record)
        if summary is None or summary.kind != kind:
            problems.append(f"MLflow run {run_id} is tagged as {kind} shadow evidence but its record holds none")
            continue
        if summary.model_name != ref.name or summary.shadow_version != ref.version:
            problems.append(
                f"MLflow run {run_id} is tagged as shadow evidence for {ref.uri}, but its record is about "
                f"models:/{summary.model_name}/{summary.shadow_version}"
            )
            continue
        try:
            items += _shadow_items(summary, run_id, _recorded_at(record))
        except ValueError as e:
            problems.append(f"shadow evidence of MLflow run {run_id} is malformed: {e}")
    return ShadowEvidenceSet(alias, champion, tuple(items)), problems


def _summary_of(record: StepRecord) -> ShadowSummary | None:
    if isinstance(record.results, PredictResult):
        return record.results.shadow
    if isinstance(record.results, ShadowResult):
        return record.results.summary
    return None


def _shadow_items(summary: ShadowSummary, run_id: str, recorded_at: datetime) -> list[ShadowEvidence]:
    """One piece per input compared (or failed on); a step that failed before any input, one piece with its error."""
    if not summary.batches and summary.error is not None:
        return [_piece(summary, run_id, recorded_at, None, None, summary.error)]
    return [
        _piece(summary, run_id, recorded_at, batch.input_fingerprint, batch.comparison, batch.error)
        for batch in summary.batches
    ]


def _piece(
    summary: ShadowSummary,
    run_id: str,
    recorded_at: datetime,
    input_fingerprint: str | None,
    found: ShadowComparison | None,
    error: str | None,
) -> ShadowEvidence:
    if summary.shadow_version is None:
        raise ValueError("it names no shadow version")
    return ShadowEvidence(
        source=summary.kind,
        run_id=run_id,
        candidate_version=summary.shadow_version,
        candidate_fingerprint=summary.shadow_fingerprint,
        champion_version=summary.primary_version,
        input_fingerprint=input_fingerprint,
        task=None if found is None else found.task,
        rows=0 if found is None else found.rows,
        agreement=None if found is None else found.agreement,
        mean_abs_delta=None if found is None or found.abs_delta is None else found.abs_delta.mean,
        primary_ms_per_1k_rows=None if found is None else found.primary_ms_per_1k_rows,
        shadow_ms_per_1k_rows=None if found is None else found.shadow_ms_per_1k_rows,
        error=error,
        recorded_at=recorded_at,
    )


# ------------------------------------------------------------------------------------------------
# The artifact under decision
# ------------------------------------------------------------------------------------------------


def _verify_artifact(hook: MlflowHook, version: ModelVersion, subject: Subject) -> list[str]:
    """The bytes in the registry must still be the bytes that were trained and fingerprinted."""
    if not subject.model_fingerprint:
        return [f"{subject.model_name} v{subject.model_version} has no recorded artifact fingerprint"]
    if not version.source:
        return [f"{subject.model_name} v{subject.model_version} has no artifact source in the registry"]
    try:
        current = models.fingerprint_model(version.source, hook)
    except Exception as e:
        return [f"model artifact {version.source} cannot be read: {type(e).__name__}: {e}"]
    if current != subject.model_fingerprint:
        return [
            f"model artifact changed after training: fingerprint now {current}, recorded {subject.model_fingerprint}"
        ]
    return []


# ------------------------------------------------------------------------------------------------
# The champion the evaluation compared against
# ------------------------------------------------------------------------------------------------


def _champion_problems(
    hook: MlflowHook,
    ref: models.ModelRef,
    alias: str,
    evaluation: EvaluationEvidence,
    evaluate_record: StepRecord,
) -> list[str]:
    """
    The champion compared against must still be the champion when the gate decides.

    MLflow removes an alias when the version it points to is deleted, so "an alias pointing to a
    deleted version" shows up as a champion that vanished: after the evaluation (the evaluation
    names it, the registry no longer has it) or before it (the evaluation found no champion; the
    promotion records of this model say there was one). Either way the comparison is void.
    """
    try:
        current = hook.alias_version(ref.name, alias)
    except Exception as e:
        return [f"cannot resolve the {alias!r} alias of {ref.name}: {e}"]
    compared = evaluation.champion_version
    if compared is not None:
        if current == compared:
            return []
        if current is None:
            try:
                gone = hook.model_version(ref.name, compared) is None
            except Exception as e:
                return [f"cannot check champion version {compared} of {ref.name}: {e}"]
            what = "has been deleted from the registry" if gone else "no longer holds it"
            return [
                f"champion deleted: the evaluation compared against champion v{compared}, which {what}; "
                f"alias {alias!r} of {ref.name} is now unset, so the comparison is void"
            ]
        return [
            f"the champion changed after the evaluation: it compared against v{compared}, "
            f"but alias {alias!r} now points to v{current}; evaluate again"
        ]
    if current is not None and current != ref.version:
        return [f"the evaluation found no champion, but alias {alias!r} now points to v{current}; evaluate again"]
    if current is None:
        return _vanished_champion(hook, ref, alias, evaluate_record)
    return []


def _vanished_champion(
    hook: MlflowHook, ref: models.ModelRef, alias: str, evaluate_record: StepRecord
) -> list[str]:
    """
    No champion now: a first version, or a champion that was removed (its version deleted)?
    Promotion step runs outlive the versions they promoted; look for one (bounded query, only on
    this rare path) in the experiment of the evaluation.
    """
    try:
        experiment = hook.get_run(evaluate_record.mlflow_run_id).info.experiment_id
        name = ref.name.replace("'", "\\'")
        runs = hook.search_runs(
            [experiment],
            filter_string=(
                f"tags.`{TAG_STEP}` = 'promote' and tags.`{TAG_MODEL_NAME}` = '{name}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=20,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs:
            try:
                result = read_step_record(hook, run.info.run_id).results
            except RecordError:
                continue
            if not isinstance(result, PromotionResult) or result.alias != alias or not result.holder_after:
                continue
            held = result.holder_after
            gone = hook.model_version(ref.name, held) is None
            what = "has since been deleted from the registry" if gone else "still exists but no longer holds it"
            return [
                f"champion deleted: alias {alias!r} of {ref.name} is unset, but it was held by v{held} "
                f"(promoted by MLflow run {run.info.run_id}), which {what}. A model whose champion "
                "vanished is not a first version: restore a champion and evaluate again"
            ]
    except Exception as e:
        return [f"cannot tell whether {ref.name} ever had a champion: {type(e).__name__}: {e}"]
    return []


# ------------------------------------------------------------------------------------------------
# Human approval (Airflow's HITL operators, through XCom)
# ------------------------------------------------------------------------------------------------


def approval_from_hitl(
    value: Any, task_id: str, *, approve_option: str = APPROVE_OPTION
) -> tuple[ApprovalEvidence | None, list[str]]:
    """
    Map what ``ApprovalOperator``/``HITLOperator`` pushes to XCom onto :class:`ApprovalEvidence`.

    The XCom value is ``{"chosen_options": [...], "params_input": {...}, "responded_at": datetime,
    "responded_by_user": {"id", "name"} | None}``. Approved means exactly ``[approve_option]`` was
    chosen. The approver is the responding user (None when a timeout default answered: not a
    person). The version approved is the form field ``model_version``; an approval that does not
    name it is reported as a problem (fail closed). Returns the evidence (None when there is none)
    and the problems.
    """
    where = f"approval task {task_id!r}"
    if value is None:
        return None, [f"no response from {where} in XCom: did it run, and does the gate depend on it?"]
    if not isinstance(value, Mapping) or not isinstance(value.get("chosen_options"), (list, tuple)):
        return None, [f"{where} returned {type(value).__name__}, not a human-in-the-loop response"]
    chosen = [str(option) for option in value["chosen_options"]]
    params = value.get("params_input") or {}
    if not isinstance(params, Mapping):
        params = {}
    problems: list[str] = []
    user = value.get("responded_by_user")
    approver = None
    if isinstance(user, Mapping):
        name, user_id = user.get("name"), user.get("id")
        approver = str(name or user_id) if (name or user_id) else None
        if name and user_id and str(user_id) != str(name):
            approver = f"{name} (id {user_id})"
    try:
        decided_at = parse_time(value.get("responded_at"), "the response time (responded_at)")
    except ValueError as e:
        return None, [f"{where}: {e}"]
    version = params.get(APPROVAL_VERSION_PARAM)
    version = str(version).strip() if version is not None and str(version).strip() else None
    if version is None:
        problems.append(
            f"the approval from {where} does not name the model version: the approver must enter the "
            f"version in the {APPROVAL_VERSION_PARAM!r} field"
        )
    comment = params.get(APPROVAL_COMMENT_PARAM)
    if user is None and chosen:
        comment = " ".join(x for x in ["answered by the timeout default, not by a person", comment] if x)
    try:
        evidence = ApprovalEvidence(
            approved=chosen == [approve_option],
            approver=approver,
            decided_at=decided_at,
            comment=str(comment) if comment is not None else None,
            model_version=version,
        )
    except ValueError as e:
        return None, [f"{where} returned a malformed response: {e}"]
    return evidence, problems

