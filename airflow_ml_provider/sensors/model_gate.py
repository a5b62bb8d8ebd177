"""ModelGateSensor: gathers the evidence for one model version, asks the policy, passes or fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.gate import Evidence, GatePolicy, Verdict
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.lineage.datasets import LineageDataset
    from airflow_ml_provider.models import ModelRef

# Model version tags written with the verdict, read by PromoteModelOperator.
TAG_GATE_STATUS = "airflow_ml.gate.status"
TAG_GATE_RUN = "airflow_ml.gate.run_id"
TAG_GATE_FINGERPRINT = "airflow_ml.gate.model_fingerprint"
VERDICT_ARTIFACT = "airflow_ml/verdict.json"


class ModelGateSensor(BaseSensorOperator):
    """
    Block promotion unless every piece of evidence for this exact model version is green.

    Evidence is read from MLflow through the version's tags: the data expectations of the
    featurize run that produced its training features, its evaluation (with the champion's
    metrics), and its must-pass scenario results. The pure policy decides; the verdict, with every
    check and its reason, is printed as a table, stored as ``airflow_ml/verdict.json`` in the gate's
    MLflow run and summarised on the model version (``airflow_ml.gate.status``).

    Missing, unreadable or mismatched evidence is a failed check. When the verdict fails the task
    fails without retry (``soft_fail=True`` skips instead), so promotion downstream does not run.

    :param model: TrainOperator's result, ``{"model_name", "version"}`` or ``models:/<name>/<version>`` (templated).
    :param policy: a :class:`~airflow_ml_provider.gate.GatePolicy` or its dict form (templated).
    :param scenarios: the scenario file; every scenario in it must have been run and passed (templated).
    :param wait_for_evidence: keep poking while evidence is missing (until ``timeout``) instead of
        failing at once; evidence that is present and failing always fails at once.
    :param verify_artifact: re-fingerprint the model artifact and compare with the one recorded at training.
    """

    template_fields: Sequence[str] = ("model", "policy", "scenarios", "experiment_name")
    ui_color = "#fbe7c6"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.policy = policy
        self.scenarios = scenarios
        self.wait_for_evidence = wait_for_evidence
        self.verify_artifact = verify_artifact
        self.mlflow_conn_id = mlflow_conn_id
        self.experiment_name = experiment_name
        self._model_input: LineageDataset | None = None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_ml_provider.gate import decide
        from airflow_ml_provider.lineage.datasets import model_dataset
        from airflow_ml_provider.models import ModelRef
        from airflow_ml_provider.operators.base import resolve_hook

        ref = ModelRef.parse(self.model)
        hook = resolve_hook(self.mlflow_conn_id)
        policy, policy_problems = self._resolve_policy()
        evidence = self._gather(hook, ref, policy_problems)
        verdict = decide(policy, evidence, _now())
        self._model_input = model_dataset(
            hook.settings.tracking_uri, ref.name, ref.version, evidence.subject.model_fingerprint
        )
        if not verdict.passed and self.wait_for_evidence and _only_missing(verdict):
            self.log.info("Waiting for evidence for %s:\n%s", ref.uri, verdict.to_table())
            return False
        self.log.info("Gate verdict for %s:\n%s", ref.uri, verdict.to_table())
        self._record(hook, ref, verdict, context)
        if not verdict.passed:
            raise AirflowFailException(verdict.summary())
        return PokeReturnValue(is_done=True, xcom_value=verdict.to_dict())

    def _resolve_policy(self) -> tuple[GatePolicy, list[str]]:
        """The declared policy, with every scenario of the scenario file made required."""
        import dataclasses

        from airflow_ml_provider.gate import GatePolicy
        from airflow_ml_provider.scenarios import load_scenarios

        policy = self.policy if isinstance(self.policy, GatePolicy) else GatePolicy.from_dict(self.policy)
        if not self.scenarios:
            return policy, []
        try:
            names = load_scenarios(self.scenarios).names
        except Exception as e:
            return policy, [f"scenario file {self.scenarios} cannot be loaded: {e}"]
        required = tuple(dict.fromkeys((*policy.required_scenarios, *names)))
        return dataclasses.replace(policy, required_scenarios=required), []

    def _gather(self, hook: MlflowHook, ref: ModelRef, problems: list[str]) -> Evidence:
        from airflow_ml_provider.gate import Evidence, Subject
        from airflow_ml_provider.records.evidence import gather_evidence

        try:
            evidence = gather_evidence(hook.get_client(), ref, verify_artifact=self.verify_artifact)
        except Exception as e:  # MLflow down, version gone: fail closed with the reason
            self.log.warning("Could not gather evidence for %s: %s", ref.uri, e)
            return Evidence(
                subject=Subject(ref.name, ref.version, None),
                training_dataset_fingerprints=(),
                problems=(*problems, f"cannot read evidence for {ref.uri} from MLflow: {e}"),
            )
        if not problems:
            return evidence
        import dataclasses

        return dataclasses.replace(evidence, problems=(*evidence.problems, *problems))

    def _record(self, hook: MlflowHook, ref: ModelRef, verdict: Verdict, context: Context) -> None:
        """Store the verdict in MLflow; a verdict that cannot be stored cannot be promoted on."""
        from airflow_ml_provider.operators.base import resolve_experiment
        from airflow_ml_provider.tracking import step_run

        try:
            with step_run(
                hook, resolve_experiment(self.experiment_name, hook, context), context, "gate", None
            ) as run:
                run.record.model = {
                    "name": ref.name,
                    "version": ref.version,
                    "uri": ref.uri,
                    "fingerprint": verdict.subject.model_fingerprint,
                }
                run.record.results = {"verdict": verdict.to_dict()}
                run.log_dict(verdict.to_dict(), VERDICT_ARTIFACT)
                run.log_metrics(
                    {"gate_passed": float(verdict.passed), "gate_failed_checks": len(verdict.failures)}
                )
                client = hook.get_client()
                tags = {
                    TAG_GATE_STATUS: "passed" if verdict.passed else "failed",
                    TAG_GATE_RUN: run.run_id,
                    TAG_GATE_FINGERPRINT: verdict.subject.model_fingerprint or "",
                }
                for key, value in tags.items():
                    client.set_model_version_tag(ref.name, ref.version, key, value)
        except Exception as e:
            if verdict.passed:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(
                    f"gate passed but the verdict could not be recorded in MLflow: {e}"
                ) from e
            self.log.warning("Could not record the failed verdict in MLflow: %s", e)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The model under decision as input. Built from what poke() saw: no I/O in the listener's fork."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_ml_provider.lineage.datasets import to_input

        return OperatorLineage(inputs=[to_input(self._model_input)] if self._model_input else [])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)


def _only_missing(verdict: Verdict) -> bool:
    return all(c.name.startswith("evidence:") and "missing" in c.reason for c in verdict.failures)


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
