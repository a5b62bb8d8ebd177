"""Gather the gate's evidence for one model version from MLflow (and a human approval from XCom).

Every piece is found through the model version's own tags (``airflow_ml.evidence.<step>`` -> the
MLflow run holding that step's record), never through task order and never by listing the
registry: one check costs a fixed number of queries whatever the number of versions. Anything that
cannot be read becomes a named problem, which the policy turns into a failed check: gathering
fails closed.

Besides the evidence itself, :func:`gather` reports which pieces are *pending* (evaluation or
scenarios not written yet), so a waiting sensor or trigger can tell "not yet" from "bad".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

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
from airflow_ml_provider.model import reference as models
from airflow_ml_provider.records.step_record import RECORD_ARTIFACT_PATH, RecordError, StepRecord

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

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

_TAG_STEP = "airflow_ml.step"  # tracking.TAG_STEP (not imported: tracking pulls in more than we need)
_TAG_MODEL_NAME = "airflow_ml.model_name"  # set on every model step run (ModelStepOperator.open_model)


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
    try:
        relaxed = dataclasses.replace(policy, **changes)
    except ValueError:  # the policy checks nothing else: judge only the gathering problems
        return () if gathered.evidence.problems else missing
    return missing if decide(relaxed, gathered.evidence, now).passed else ()


def needs_champion(policy: GatePolicy) -> bool:
    """Whether any metric rule compares with the champion."""
    return any(
        rule.min_absolute_change is not None or rule.min_relative_change is not None for rule in policy.metrics.values()
    )


# ------------------------------------------------------------------------------------------------
# Gathering from MLflow
# ------------------------------------------------------------------------------------------------


def gather_evidence(
    client: MlflowClient, ref: models.ModelRef, verify_artifact: bool = True, champion_alias: str | None = None
) -> Evidence:
    """Collect what is known about ``ref``; raises only when the version itself cannot be read."""
    return gather(client, ref, verify_artifact=verify_artifact, champion_alias=champion_alias).evidence


def gather(
    client: MlflowClient,
    ref: models.ModelRef,
    *,
    verify_artifact: bool = True,
    champion_alias: str | None = None,
) -> Gathered:
    """
    Collect the evidence for ``ref``; raises only when the version itself cannot be read.

    :param verify_artifact: re-fingerprint the version's artifact and compare it with the
        fingerprint recorded at training (the bytes must not have changed since).
    :param champion_alias: when set, check that the champion the evaluation compared against is
        still the champion (not deleted, not moved), and that a missing champion really is a first
        version rather than a champion that was removed.
    """
    version = models.get_version(client, ref)
    tags = version.tags
    subject = Subject(ref.name, ref.version, tags.get(models.TAG_MODEL_FINGERPRINT))
    problems: list[str] = []
    trained_on = [fp for fp in [tags.get(models.TAG_FEATURES_FINGERPRINT)] if fp]
    if not trained_on:
        problems.append(f"{ref.uri} has no recorded training features fingerprint (not trained by TrainOperator?)")
    if verify_artifact:
        problems += _verify_artifact(client, version, subject)

    records: dict[str, StepRecord] = {}
    pending: list[str] = []
    for step in STEPS:
        run_id = tags.get(models.evidence_tag(step))
        if not run_id:
            if step in LATE_STEPS:
                pending.append(step)
            continue  # missing evidence: the policy names it
        try:
            record = read_record(client, run_id)
        except RecordError as e:
            if step in LATE_STEPS and _still_running(client, run_id):
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
            problems += _champion_problems(client, ref, champion_alias, evaluation, records["evaluate"])
    scenarios = None
    if "simulate" in records:
        try:
            scenarios = _scenarios(records["simulate"])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"simulate evidence is malformed: {type(e).__name__}: {e}")
    evidence = Evidence(
        subject=subject,
        training_dataset_fingerprints=tuple(trained_on),
        data_expectations=tuple(expectations),
        evaluation=evaluation,
        scenarios=scenarios,
        problems=tuple(problems),
    )
    return Gathered(evidence, tuple(pending))


def read_record(client: MlflowClient, run_id: str) -> StepRecord:
    """
    The step record of ``run_id``. One ``get_run`` to find the run's artifact location, then the
    record is read in place when that location is a local directory (no temporary copy), and
    downloaded otherwise. Any problem is a :class:`RecordError`.
    """
    try:
        artifact_uri = client.get_run(run_id).info.artifact_uri
        local = _local_path(artifact_uri)
        if local is not None:
            text = (local / RECORD_ARTIFACT_PATH).read_text()
        else:
            import tempfile

            import mlflow

            with tempfile.TemporaryDirectory() as tmp:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{artifact_uri.rstrip('/')}/{RECORD_ARTIFACT_PATH}",
                    dst_path=tmp,
                    tracking_uri=client.tracking_uri,
                )
                text = Path(path).read_text()
        data = json.loads(text)
    except Exception as e:
        raise RecordError(f"step record of MLflow run {run_id} is missing or unreadable: {e}") from e
    if not isinstance(data, Mapping) or "step" not in data:
        raise RecordError(f"step record of MLflow run {run_id} is not a step record")
    return StepRecord.from_dict(data)


def _local_path(uri: str | None) -> Path | None:
    """The local directory behind an artifact URI, or None when it is remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


def _still_running(client: MlflowClient, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.status == "RUNNING"
    except Exception:
        return False


def _recorded_at(record: StepRecord) -> datetime:
    if record.recorded_at:
        return datetime.fromisoformat(record.recorded_at)
    return datetime.fromtimestamp(0, tz=timezone.utc)  # unknown time: stale for any max age


def _expectations(
    record: StepRecord,
) -> tuple[list[ExpectationEvidence], dict[str, str], list[str]]:
    """Expectation evidence of a featurize record, the fingerprint of each dataset role, problems."""
    fingerprints = {str(d.get("role")): str(d.get("fingerprint")) for d in record.inputs + record.outputs}
    out, problems = [], []
    for report in record.results.get("expectations", []):
        try:
            results = report.get("results", [])
            out.append(
                ExpectationEvidence(
                    dataset=str(report.get("dataset")),
                    dataset_fingerprint=fingerprints.get(str(report.get("role"))),
                    suite_name=str(report.get("suite_name")),
                    success=report.get("success") is True,
                    expectation_count=len(results),
                    failures=tuple(
                        f"{r.get('expectation_type')} on {r.get('column')}"
                        for r in results
                        if r.get("success") is not True
                    ),
                    model_version=None,
                    recorded_at=_recorded_at(record),
                )
            )
        except (AttributeError, TypeError, ValueError) as e:
            problems.append(f"featurize evidence holds a malformed expectation report: {type(e).__name__}: {e}")
    return out, fingerprints, problems


def _model_of(record: StepRecord) -> tuple[str, str | None]:
    model = record.model or {}
    return str(model.get("version")), model.get("fingerprint")


def _metric(value: Any) -> float:
    """A recorded metric as float; JSON has no NaN/inf, so they may come back as strings."""
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(value.strip().lower().replace("infinity", "inf"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric value {value!r} is not a number")
    return float(value)


def _evaluation(record: StepRecord) -> tuple[EvaluationEvidence, list[str]]:
    version, fingerprint = _model_of(record)
    champion: Mapping[str, Any] | None = record.results.get("champion")
    problems = []
    if champion and champion.get("error"):
        problems.append(f"champion could not be evaluated: {champion['error']}")
    evidence = EvaluationEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        metrics={k: _metric(v) for k, v in record.results.get("metrics", {}).items()},
        champion_version=str(champion["version"]) if champion and champion.get("version") else None,
        champion_metrics=(
            {k: _metric(v) for k, v in champion["metrics"].items()} if champion and "metrics" in champion else None
        ),
        recorded_at=_recorded_at(record),
    )
    return evidence, problems


def _scenarios(record: StepRecord) -> ScenarioEvidence:
    version, fingerprint = _model_of(record)
    results: Sequence[Mapping[str, Any]] = record.results.get("scenarios", {}).get("results", [])
    return ScenarioEvidence(
        model_version=version,
        model_fingerprint=fingerprint,
        results={str(r["name"]): r["passed"] is True for r in results},
        reasons={str(r["name"]): str(r.get("reason", "")) for r in results},
        recorded_at=_recorded_at(record),
    )


# ------------------------------------------------------------------------------------------------
# The artifact under decision
# ------------------------------------------------------------------------------------------------


def _verify_artifact(client: MlflowClient, version: ModelVersion, subject: Subject) -> list[str]:
    """The bytes in the registry must still be the bytes that were trained and fingerprinted."""
    if not subject.model_fingerprint:
        return [f"{subject.model_name} v{subject.model_version} has no recorded artifact fingerprint"]
    if not version.source:
        return [f"{subject.model_name} v{subject.model_version} has no artifact source in the registry"]
    try:
        current = models.fingerprint_model(version.source, client)
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


def _version_exists(client: MlflowClient, name: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(e).lower():
            return False
        raise
    return True


def _champion_problems(
    client: MlflowClient,
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
        current = models.current_alias_version(client, ref.name, alias)
    except Exception as e:
        return [f"cannot resolve the {alias!r} alias of {ref.name}: {e}"]
    compared = evaluation.champion_version
    if compared is not None:
        if current == compared:
            return []
        if current is None:
            try:
                gone = not _version_exists(client, ref.name, compared)
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
        return _vanished_champion(client, ref, alias, evaluate_record)
    return []


def _vanished_champion(
    client: MlflowClient, ref: models.ModelRef, alias: str, evaluate_record: StepRecord
) -> list[str]:
    """
    No champion now: a first version, or a champion that was removed (its version deleted)?
    Promotion step runs outlive the versions they promoted; look for one (bounded query, only on
    this rare path) in the experiment of the evaluation.
    """
    try:
        experiment = client.get_run(evaluate_record.mlflow_run_id).info.experiment_id
        name = ref.name.replace("'", "\\'")
        runs = client.search_runs(
            [experiment],
            filter_string=(
                f"tags.`{_TAG_STEP}` = 'promote' and tags.`{_TAG_MODEL_NAME}` = '{name}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=20,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs:
            try:
                results = read_record(client, run.info.run_id).results or {}
            except RecordError:
                continue
            held = results.get("holder_after") or results.get("promoted")
            if results.get("alias", "champion") != alias or not held:
                continue
            gone = not _version_exists(client, ref.name, str(held))
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
        decided_at = _when(value.get("responded_at"))
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


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError(f"the response has no time (responded_at={value!r})")
    if moment.tzinfo is None:
        raise ValueError(f"the response time {moment.isoformat()} has no timezone")
    return moment
