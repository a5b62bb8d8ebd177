"""ModelGateSensor: gathers the evidence for one model version, asks the policy, passes or fails."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_ml_provider.links import MODEL_STEP_LINKS
from airflow_ml_provider.parsing import utc_now

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.gate import ApprovalEvidence, Evidence, GatePolicy, Verdict
    from airflow_ml_provider.gate.gather import Gathered
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.lineage.datasets import LineageDataset
    from airflow_ml_provider.model.reference import ModelRef


@dataclasses.dataclass(frozen=True)
class _Assessment:
    """One gathering and decision: what poke, execute_complete and the timeout paths share."""

    ref: ModelRef
    hook: MlflowHook
    policy: GatePolicy
    evidence: Evidence
    verdict: Verdict
    #: Required evidence steps still worth waiting for (empty: the verdict stands).
    waiting: tuple[str, ...] = ()


class ModelGateSensor(BaseSensorOperator):
    """
    Block promotion unless every piece of evidence for this exact model version is green.

    Evidence is read from MLflow through the version's tags: the data expectations of the
    featurize run that produced its training features, its evaluation (with the champion's
    metrics), its must-pass scenario results and, when the policy asks for it, a human approval.
    The pure policy decides; the verdict, with every check and its reason, is printed as a table,
    stored as ``airflow_ml/verdict.json`` in the gate's MLflow run and summarised on the model
    version (``airflow_ml.gate.status``).

    Missing, unreadable or mismatched evidence is a failed check. When the verdict fails the task
    fails without retry (``soft_fail=True`` skips instead), so promotion downstream does not run.
    A timeout fails closed too: the verdict is recorded with the timeout as a failed check, then
    the task fails (or is skipped with ``soft_fail``).

    **Modes.** ``mode="poke"`` and ``mode="reschedule"`` check in the worker. ``deferrable=True``
    hands the waiting to :class:`~airflow_ml_provider.triggers.model_gate.ModelGateTrigger`, which
    checks MLflow asynchronously in the triggerer (the worker slot is freed); when the evidence is
    complete the task resumes in ``execute_complete``, which gathers, decides and records exactly as
    a poke does. Waiting only happens with ``wait_for_evidence=True``; otherwise the first check
    decides.

    **Human approval** (``policy.require_approval``) uses Airflow's own human-in-the-loop operators.
    The approver names the version they approve in a ``model_version`` form field, and the gate
    depends on the approval task, whose response it reads from XCom::

        from airflow.providers.standard.operators.hitl import ApprovalOperator
        from airflow.sdk import Param

        approve = ApprovalOperator(
            task_id="approve",
            subject="Promote {{ ti.xcom_pull('train')['model_uri'] }}?",
            body="Evaluation and scenarios are in MLflow. Type the version you approve.",
            params={"model_version": Param("", type="string", minLength=1),
                    "comment": Param("", type="string")},
        )
        gate = ModelGateSensor(task_id="gate", model=train.output, policy={..., "require_approval": True},
                               approval_task_id="approve")
        [evaluate, simulate] >> approve >> gate >> promote

    The verdict records the approver (the responding user), the time, the comment and the version
    named. It fails when the response is a rejection, names another version or none, was given by
    the timeout default rather than a person, or is missing. Note that ``ApprovalOperator`` skips its
    direct downstream tasks on "Reject", so the gate (and promotion) is skipped and no verdict is
    written; to have rejections recorded in the verdict use
    ``HITLOperator(options=["Approve", "Reject"], ...)`` instead, which never skips.

    :param model: TrainOperator's result, ``{"model_name", "version"}`` or ``models:/<name>/<version>`` (templated).
    :param policy: a :class:`~airflow_ml_provider.gate.GatePolicy` or its dict form (templated). A literal
        policy, or one templated only in its numbers, is validated when the DAG file is parsed (a mistake
        is a DAG import error naming the key); any other is validated once rendered, before evidence is
        read, and an invalid one fails the gate (even with ``soft_fail``) with a verdict saying why.
        A templated number that renders as text ("0.9", without ``render_template_as_native_obj``)
        is read as a number. Metric directions come from the built-in metric table
        (:data:`airflow_ml_provider.model.metrics.BUILTIN`); a custom metric must set ``greater_is_better``.
    :param scenarios: the scenario file; every scenario in it must have been run and passed (templated).
    :param wait_for_evidence: keep checking while evaluation or scenario evidence is not written yet
        (until ``timeout``) instead of failing at once; evidence that is present and failing always
        fails at once.
    :param verify_artifact: re-fingerprint the model artifact and compare with the one recorded at training.
    :param approval_task_id: the HITL task whose response is the human approval (see above).
    :param champion_alias: registry alias of the champion; when the policy compares with the champion,
        the gate checks that the champion the evaluation compared against still holds it (templated).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("model", "policy", "scenarios", "experiment_name", "champion_alias")
    ui_color = "#fbe7c6"
    #: "MLflow run" (the run holding the verdict) and "Model version": :mod:`airflow_ml_provider.links`.
    operator_extra_links = MODEL_STEP_LINKS

    def __init__(
        self,
        *,
        model: Mapping[str, Any] | str,
        policy: GatePolicy | Mapping[str, Any],
        scenarios: str | None = None,
        wait_for_evidence: bool = False,
        verify_artifact: bool = True,
        mlflow_conn_id: str | None = None,
        experiment_name: str | None = None,
        approval_task_id: str | None = None,
        champion_alias: str = "champion",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.policy = policy
        self._policy_numbers = _check_policy_at_parse(policy, self.task_id)
        self.scenarios = scenarios
        self.wait_for_evidence = wait_for_evidence
        self.verify_artifact = verify_artifact
        self.mlflow_conn_id = mlflow_conn_id
        self.experiment_name = experiment_name
        self.approval_task_id = approval_task_id
        self.champion_alias = champion_alias
        if deferrable is None:
            from airflow.sdk import conf

            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = deferrable
        self._model_input: LineageDataset | None = None
        self._waiting: _Assessment | None = None

    # --- entry points ----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

        from airflow_ml_provider.task_logs import route_mlflow_output_to_task_log

        route_mlflow_output_to_task_log()
        try:
            self._declared_policy()  # rendered by now: a bad policy fails here, before any evidence is read
        except ValueError as e:
            self._refuse_policy(context, e)
        if self.deferrable:
            return self._defer(context)
        self._waiting = None
        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException):
            # BaseSensorOperator times out after a poke that was still waiting (soft_fail turns that
            # into a skip): record the verdict with the timeout before giving up.
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                self._publish(context, self._with_problem(waiting, self._timeout_problem(waiting.waiting)))
            raise

    def poke(self, context: Context) -> bool | PokeReturnValue:
        self._waiting = None
        assessment = self._assess(context)
        if assessment.waiting:
            self._waiting = assessment
            self.log.info(
                "Waiting for %s evidence of %s:\n%s",
                ", ".join(assessment.waiting),
                assessment.ref.uri,
                assessment.verdict.to_table(),
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(context, assessment))

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after :class:`ModelGateTrigger` fired: gather again, decide and record as a poke does."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from airflow_ml_provider.task_logs import route_mlflow_output_to_task_log

        route_mlflow_output_to_task_log()
        event = dict(event or {})
        self.log.info("ModelGateTrigger fired: %s", event)
        if event.get("status") == "timeout":
            steps = tuple(event.get("missing") or ())
            assessment = self._assess(context, [self._timeout_problem(steps, event.get("message"))])
            self._publish(context, assessment)
            raise AirflowSensorTimeout(assessment.verdict.summary())
        if event.get("status") == "error":
            self.log.warning("The trigger could not read MLflow: %s", event.get("message"))
        return self._conclude(context, self._assess(context, allow_wait=False))

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR

        if next_method == TRIGGER_FAIL_REPR:
            # The deferral timed out or the trigger crashed: record that verdict, then let Airflow fail
            # (or skip, with soft_fail) the task as it would.
            error = (next_kwargs or {}).get("error", "unknown")
            problem = f"the deferred wait for evidence ended without a decision: {getattr(error, 'value', error)}"
            try:
                self._publish(context, self._assess(context, [problem], allow_wait=False))
            except Exception:
                self.log.exception("Could not record the gate verdict after the deferral failed")
        return super().resume_execution(next_method, next_kwargs, context)

    # --- deferral ----------------------------------------------------------------------------------
    def _defer(self, context: Context) -> Any:
        from datetime import timedelta

        from airflow_ml_provider.model.reference import ModelRef
        from airflow_ml_provider.operators.base import resolve_hook
        from airflow_ml_provider.triggers.model_gate import ModelGateTrigger

        ref = ModelRef.parse(self.model)
        declared = self._declared_policy()
        names, problems = self._scenario_names()
        try:
            settings = resolve_hook(self.mlflow_conn_id).settings
        except Exception as e:
            problems.append(f"cannot resolve the MLflow connection: {e}")
        if problems:  # nothing worth waiting for: decide now, failing closed
            return self._conclude(context, self._assess(context, allow_wait=False))
        deadline = utc_now() + timedelta(seconds=self.timeout)
        trigger = ModelGateTrigger(
            model_name=ref.name,
            model_version=ref.version,
            tracking_uri=settings.tracking_uri,
            registry_uri=settings.registry_uri,
            policy=declared.to_dict(),
            scenario_names=list(names),
            poke_interval=self.poke_interval,
            deadline=deadline.isoformat(),
            wait_for_evidence=self.wait_for_evidence,
            http_request_timeout=settings.http_request_timeout,
            http_request_max_retries=settings.http_request_max_retries,
            http_request_backoff_factor=settings.http_request_backoff_factor,
        )
        # The trigger fires "timeout" itself at the deadline; Airflow's deferral timeout is a backstop
        # (handled in resume_execution) in case the triggerer cannot run it.
        grace = max(60.0, 2 * self.poke_interval)
        self.defer(
            trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout + grace)
        )

    # --- gathering and deciding --------------------------------------------------------------------
    def _assess(
        self, context: Context, extra_problems: Sequence[str] = (), *, allow_wait: bool = True
    ) -> _Assessment:
        from airflow_ml_provider.gate import decide
        from airflow_ml_provider.gate.gather import Gathered, waiting_for, with_scenarios
        from airflow_ml_provider.model.reference import ModelRef
        from airflow_ml_provider.operators.base import resolve_hook

        ref = ModelRef.parse(self.model)
        hook = resolve_hook(self.mlflow_conn_id)
        names, problems = self._scenario_names()
        policy = with_scenarios(self._declared_policy(), names)
        gathered = self._gather(hook, ref, policy)
        approval, approval_problems = self._approval(context)
        evidence = dataclasses.replace(
            gathered.evidence,
            approval=approval,
            problems=(*gathered.evidence.problems, *problems, *approval_problems, *extra_problems),
        )
        now = utc_now()
        waiting: tuple[str, ...] = ()
        if allow_wait and self.wait_for_evidence and not extra_problems:
            waiting = waiting_for(policy, Gathered(evidence, gathered.pending), now)
        verdict = decide(policy, evidence, now)
        self._model_input = self._lineage_model(hook, ref, evidence)
        return _Assessment(ref, hook, policy, evidence, verdict, waiting)

    def _with_problem(self, assessment: _Assessment, problem: str) -> _Assessment:
        """The same evidence with one more problem, decided again (pure: no new gathering)."""
        from airflow_ml_provider.gate import decide

        evidence = dataclasses.replace(assessment.evidence, problems=(*assessment.evidence.problems, problem))
        verdict = decide(assessment.policy, evidence, utc_now())
        return dataclasses.replace(assessment, evidence=evidence, verdict=verdict, waiting=())

    def _timeout_problem(self, steps: Sequence[str], detail: str | None = None) -> str:
        missing = f"{', '.join(steps)} evidence still missing" if steps else "evidence still incomplete"
        return f"timed out waiting for evidence: {missing} after the sensor's {self.timeout:g}s timeout" + (
            f" ({detail})" if detail else ""
        )

    def _declared_policy(self) -> GatePolicy:
        """The rendered policy, templated numbers that rendered as text ("0.9") read as numbers."""
        from airflow_ml_provider.gate import GatePolicy
        from airflow_ml_provider.templating import coerce_numbers

        if isinstance(self.policy, GatePolicy):
            return self.policy
        if isinstance(self.policy, str):
            raise ValueError(
                f"the policy rendered as text, not a mapping: {self.policy[:200]!r}. A policy given as one "
                "template needs render_template_as_native_obj=True on the DAG; or template its values only"
            )
        return GatePolicy.from_dict(coerce_numbers(self.policy, self._policy_numbers))

    def _refuse_policy(self, context: Context, error: Exception) -> NoReturn:
        """Record a failed verdict saying why the rendered policy is invalid, then fail the task (no retry)."""
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_ml_provider.gate import Check, Subject, Verdict
        from airflow_ml_provider.model.reference import ModelRef
        from airflow_ml_provider.operators.base import resolve_hook

        ref = ModelRef.parse(self.model)
        reason = f"the gate policy is invalid, so no evidence was read: {error}"
        verdict = Verdict(
            subject=Subject(ref.name, ref.version, None),
            passed=False,
            checks=(Check("policy", False, reason),),
            decided_at=utc_now(),
            policy=_recordable(self.policy),
        )
        self._publish_verdict(context, resolve_hook(self.mlflow_conn_id), ref, verdict)
        raise AirflowFailException(verdict.summary())

    def _scenario_names(self) -> tuple[tuple[str, ...], list[str]]:
        """Every scenario of the scenario file (all required), or the problem loading it."""
        from airflow_ml_provider.scenarios.spec import load_scenarios

        if not self.scenarios:
            return (), []
        try:
            return tuple(load_scenarios(self.scenarios).names), []
        except Exception as e:
            return (), [f"scenario file {self.scenarios} cannot be loaded: {e}"]

    def _gather(self, hook: MlflowHook, ref: ModelRef, policy: GatePolicy) -> Gathered:
        from airflow_ml_provider.gate import Evidence, Subject
        from airflow_ml_provider.gate.gather import Gathered, gather, needs_champion

        try:
            return gather(
                hook,
                ref,
                verify_artifact=self.verify_artifact,
                champion_alias=self.champion_alias if needs_champion(policy) else None,
                shadow=policy.shadow is not None,
            )
        except Exception as e:  # MLflow down, version gone: fail closed with the reason
            self.log.warning("Could not gather evidence for %s: %s", ref.uri, e)
            return Gathered(
                Evidence(
                    subject=Subject(ref.name, ref.version, None),
                    training_dataset_fingerprints=(),
                    problems=(f"cannot read evidence for {ref.uri} from MLflow: {_error(e)}",),
                )
            )

    def _approval(self, context: Context) -> tuple[ApprovalEvidence | None, list[str]]:
        """The human approval pushed to XCom by the HITL task ``approval_task_id``."""
        if not self.approval_task_id:
            return None, []
        from airflow_ml_provider.gate.gather import approval_from_hitl

        try:
            value = context["ti"].xcom_pull(task_ids=self.approval_task_id)
        except Exception as e:
            return None, [f"cannot read the response of approval task {self.approval_task_id!r}: {e}"]
        return approval_from_hitl(value, self.approval_task_id)

    def _lineage_model(self, hook: MlflowHook, ref: ModelRef, evidence: Evidence) -> LineageDataset | None:
        from airflow_ml_provider.lineage.datasets import model_dataset

        try:
            return model_dataset(hook.settings.tracking_uri, ref.name, ref.version, evidence.subject.model_fingerprint)
        except Exception:  # lineage never breaks the gate
            return None

    # --- publishing ----------------------------------------------------------------------------------
    def _conclude(self, context: Context, assessment: _Assessment) -> dict[str, Any]:
        """Log and record the verdict; a failed verdict fails the task (no retry)."""
        from airflow.sdk.exceptions import AirflowFailException

        self._publish(context, assessment)
        if not assessment.verdict.passed:
            raise AirflowFailException(assessment.verdict.summary())
        return assessment.verdict.to_dict()

    def _publish(self, context: Context, assessment: _Assessment) -> None:
        self._publish_verdict(context, assessment.hook, assessment.ref, assessment.verdict)

    def _publish_verdict(self, context: Context, hook: MlflowHook, ref: ModelRef, verdict: Verdict) -> None:
        self.log.info("Gate verdict for %s:\n%s", ref.uri, verdict.to_table())
        self._record(hook, ref, verdict, context)

    def _record(self, hook: MlflowHook, ref: ModelRef, verdict: Verdict, context: Context) -> None:
        """Store the verdict in MLflow (:func:`~airflow_ml_provider.gate.store.record_verdict`); a verdict that
        cannot be stored cannot be promoted on, so for a passing one that fails the task."""
        from airflow_ml_provider.gate.store import record_verdict
        from airflow_ml_provider.operators.base import resolve_experiment

        try:
            record_verdict(hook, resolve_experiment(self.experiment_name, hook, context), context, ref, verdict)
        except Exception as e:
            if verdict.passed:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(
                    f"gate passed but the verdict could not be recorded in MLflow: {e}"
                ) from e
            self.log.warning("Could not record the failed verdict in MLflow: %s", e)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The model under decision as input, and the verdict, MLflow, environment and hardware run facets.

        Built from what poke() saw (the step run ``tracking.step_run`` attached to this task when the
        verdict was recorded): no I/O in the listener's fork, and never raises.
        """
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs: list[Any] = []
        run_facets: dict[str, Any] = {}
        try:
            from airflow_ml_provider.lineage.datasets import to_input

            model_input = getattr(self, "_model_input", None)
            inputs = [to_input(model_input)] if model_input else []
        except Exception:
            self.log.debug("Could not build the gate's lineage input", exc_info=True)
        try:
            from airflow_ml_provider.lineage.facets import step_run_facets
            from airflow_ml_provider.records.step_run import STEP_RUN_ATTRIBUTE

            run_facets = step_run_facets(getattr(self, STEP_RUN_ATTRIBUTE, None))
        except Exception:
            self.log.debug("Could not build the gate's run facets", exc_info=True)
        return OperatorLineage(inputs=inputs, run_facets=run_facets)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


def _check_policy_at_parse(policy: Any, task_id: str) -> tuple[tuple[Any, ...], ...]:
    """Validate the policy when the DAG file is parsed, as far as it is known then; returns the paths of
    its templated numbers (which may render as text, to be read as numbers after rendering).

    A literal policy, or one templated only in its numbers (checked with 1 standing in for each),
    is validated here, so a mistake is a DAG import error. Any other template is validated after
    rendering. Pure: no heavy import at parse time.
    """
    from airflow_ml_provider.gate import GatePolicy
    from airflow_ml_provider.gate.policy import is_number_field
    from airflow_ml_provider.templating import map_at, template_paths

    if isinstance(policy, GatePolicy):
        return ()
    paths = template_paths(policy)
    if paths is None:  # e.g. another task's output: known only at run time
        return ()
    numbers = tuple(path for path in paths if is_number_field(path))
    if len(numbers) == len(paths):
        try:
            GatePolicy.from_dict(map_at(policy, numbers, lambda _: 1.0))
        except ValueError as e:
            raise ValueError(f"ModelGateSensor {task_id!r}: invalid policy: {e}") from None
    return numbers


def _recordable(policy: Any) -> dict[str, Any]:
    """The policy as given, for a verdict's record; as text when it is not JSON-safe data."""
    import json

    if isinstance(policy, Mapping):
        try:
            return json.loads(json.dumps(dict(policy), allow_nan=False))
        except (TypeError, ValueError):
            pass
    return {"unparsed": repr(policy)[:2000]}


def _error(error: BaseException) -> str:
    """An exception as one short line (MLflow's connection errors run to many lines)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:500]}" if text else type(error).__name__

