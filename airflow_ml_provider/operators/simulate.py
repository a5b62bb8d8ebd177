"""SimulateOperator: run the must-pass scenarios against a candidate model version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ml_provider.operators.model_step import ModelStepOperator
from airflow_ml_provider.records.tags import SCENARIOS_ARTIFACT

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.records.step_run import StepRun


class SimulateOperator(ModelStepOperator):
    """
    Run every scenario of a scenario file (YAML or JSON) against the model version and record
    per-scenario pass/fail as the gate's scenario evidence. Failing scenarios do not fail this task
    (the gate decides and explains); a malformed scenario file does, naming the problem.

    :param model: see :class:`ModelStepOperator` (templated).
    :param scenarios: path to the scenario file (templated).
    """

    step = "simulate"
    template_fields: Sequence[str] = (*ModelStepOperator.template_fields, "scenarios")

    def __init__(self, *, scenarios: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenarios = scenarios

    def run_step(self, context: Context, hook: MlflowHook, run: StepRun) -> dict[str, Any]:
        from airflow_ml_provider.model import reference as models
        from airflow_ml_provider.records.step_record import SimulateResult
        from airflow_ml_provider.scenarios.runner import run_scenarios
        from airflow_ml_provider.scenarios.spec import load_scenarios

        suite = load_scenarios(self.scenarios)
        ref, version = self.open_model(hook, run)
        run.log_params({"scenarios_file": str(self.scenarios), "scenarios_fingerprint": suite.fingerprint})
        model = hook.load_model(ref.uri)
        report = run_scenarios(suite, model.predict, models.feature_columns(version))

        run.log_metrics({f"scenario.{r.name}": float(r.passed) for r in report.results})
        run.log_metrics(
            {
                "scenarios_passed": sum(r.passed for r in report.results),
                "scenarios_total": len(report.results),
            }
        )
        run.log_dict(report.to_dict(), SCENARIOS_ARTIFACT)
        run.record.results = SimulateResult(report)
        self.bind_evidence(hook, ref, run)
        (self.log.info if report.passed else self.log.warning)(
            "Scenarios for %s:\n%s", ref.uri, report.summary()
        )
        return {
            "model_name": ref.name,
            "version": ref.version,
            "passed": report.passed,
            "failed": [r.name for r in report.failures],
        }
