"""A real registry state for the gate tests, built once per session by calling the operators directly.

``operator.execute(context)`` with a minimal task-instance stand-in (dag_id, run_id, task_id,
try_number, map_index, and ``xcom_pull`` for the approval) against the MLflow SQLite store and
Great Expectations set up by tests/conftest.py: one featurize, one training, evaluation,
scenarios, a passing gate and a promotion make version 1 the champion. Each fault case then
registers its own candidate as a new version of the same logged model (``create_model_version``,
cheap) with the training tags, runs the real evaluate/simulate operators on it and breaks one
thing. Whole DAG runs are kept for what needs the scheduler loop (deferral, soft_fail, HITL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import DAGS, champion, make_context

HERE = Path(__file__).parent
EXAMPLE = DAGS / "breast_cancer"
SCENARIOS = EXAMPLE / "scenarios.yaml"
RAW_SUITE = EXAMPLE / "raw_suite.json"
FEATURES_SUITE = EXAMPLE / "features_suite.json"
MODEL = "gate_faults"
EXPERIMENT = "gate_tests"
DAG_ID = "gate_tests"
#: The example DAG's policy (first version allowed, accuracy may not drop by more than 0.01).
POLICY: dict[str, Any] = {
    "metrics": {
        "accuracy": {"threshold": 0.9, "min_absolute_change": -0.01},
        "roc_auc": {"threshold": 0.95},
    },
    "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
    "first_version": "allow",
}
# Tags TrainOperator writes on a version (copied onto each cloned candidate).
TRAINING_TAGS = (
    "airflow_ml.training_run_id",
    "airflow_ml.model_fingerprint",
    "airflow_ml.features_fingerprint",
    "airflow_ml.target_column",
    "airflow_ml.feature_columns",
    "airflow_ml.task",
    "airflow_ml.evidence.featurize",
)


def context(task_id: str, run_id: str | None = None, xcoms: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return make_context(DAG_ID, task_id, run_id, xcoms)


def gate(model: str, version: str, **kwargs: Any) -> Any:
    from airflow_ml_provider.sensors.model_gate import ModelGateSensor

    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("scenarios", str(SCENARIOS))
    return ModelGateSensor(task_id="gate", model=f"models:/{model}/{version}", experiment_name=EXPERIMENT, **kwargs)


@dataclass
class GateOutcome:
    passed: bool
    message: str
    #: The verdict as recorded in MLflow (None when it could not be recorded).
    verdict: dict[str, Any] | None

    @property
    def failures(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for check in (self.verdict or {}).get("checks", []):
            if not check["passed"]:
                out.setdefault(check["name"], []).append(check["reason"])
        return out


def run_gate(
    client: Any, model: str, version: str, *, xcoms: Mapping[str, Any] | None = None, **kwargs: Any
) -> GateOutcome:
    """One poke of the gate; the verdict is read back from where the gate recorded it."""
    from airflow.sdk.exceptions import AirflowFailException

    sensor = gate(model, version, **kwargs)
    try:
        result = sensor.poke(context("gate", xcoms=xcoms))
        passed, message = True, "passed"
        assert result.is_done
    except AirflowFailException as e:
        passed, message = False, str(e)
    outcome = GateOutcome(passed, message, recorded_verdict(client, model, version))
    print(f"GATE {model}/{version}: {message}")  # shown with -rP: the reasons, as a person reads them
    return outcome


def recorded_verdict(client: Any, model: str, version: str) -> dict[str, Any] | None:
    import json
    import tempfile

    tags = client.get_model_version(model, version).tags
    run_id = tags.get("airflow_ml.gate.run_id")
    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(Path(client.download_artifacts(run_id, "airflow_ml/verdict.json", tmp)).read_text())


def promote(model: str, version: str) -> Any:
    from airflow_ml_provider.operators.promote import PromoteModelOperator

    return PromoteModelOperator(
        task_id="promote", model=f"models:/{model}/{version}", experiment_name=EXPERIMENT
    ).execute(context("promote"))


def evaluate(model: str, version: str, **kwargs: Any) -> Any:
    from airflow_ml_provider.operators.evaluate import EvaluateOperator

    return EvaluateOperator(
        task_id="evaluate", model=f"models:/{model}/{version}", experiment_name=EXPERIMENT, **kwargs
    ).execute(context("evaluate"))


def simulate(model: str, version: str, scenarios: Path | str = SCENARIOS) -> Any:
    from airflow_ml_provider.operators.simulate import SimulateOperator

    return SimulateOperator(
        task_id="simulate", model=f"models:/{model}/{version}", scenarios=str(scenarios), experiment_name=EXPERIMENT
    ).execute(context("simulate"))


@dataclass
class Baseline:
    client: Any
    features: dict[str, Any]
    trained: dict[str, Any]
    champion: str
    featurize_run: str

    def clone(self, model: str = MODEL) -> str:
        """A new version of ``model`` holding the champion's logged model, tagged as TrainOperator does."""
        source = self.client.get_model_version(MODEL, self.champion)
        try:
            self.client.create_registered_model(model)
        except Exception:
            pass  # exists
        tags = {k: source.tags[k] for k in TRAINING_TAGS if k in source.tags}
        created = self.client.create_model_version(model, source.source, run_id=source.run_id, tags=tags)
        return str(created.version)

    def candidate(
        self,
        model: str = MODEL,
        *,
        evaluate_kwargs: Mapping[str, Any] | None = None,
        scenarios: Path | str | None = SCENARIOS,
    ) -> str:
        """A cloned version with real evaluation and scenario evidence: it passes the gate as is."""
        version = self.clone(model)
        evaluate(model, version, holdout=self.trained["holdout"], **dict(evaluate_kwargs or {}))
        if scenarios is not None:
            simulate(model, version, scenarios)
        return version


@pytest.fixture(scope="session")
def baseline(airflow_db: Path, raw_data: Path, mlflow_client: Any) -> Baseline:
    """featurize -> train v1 -> evaluate -> simulate -> gate -> promote: v1 is the champion."""
    from airflow_ml_provider.operators.featurize import FeaturizeOperator
    from airflow_ml_provider.operators.train import TrainOperator
    from tests.example import TARGET, train, transform

    features = FeaturizeOperator(
        task_id="featurize",
        raw_uri=str(raw_data),
        transform=transform,
        raw_suite=str(RAW_SUITE),
        features_suite=str(FEATURES_SUITE),
        experiment_name=EXPERIMENT,
    ).execute(context("featurize"))
    trained = TrainOperator(
        task_id="train",
        features=features,
        train=train,
        target_column=TARGET,
        registered_model_name=MODEL,
        experiment_name=EXPERIMENT,
    ).execute(context("train"))
    version = trained["version"]
    evaluate(MODEL, version, holdout=trained["holdout"])
    simulate(MODEL, version)
    outcome = run_gate(mlflow_client, MODEL, version)
    assert outcome.passed, outcome.message
    promote(MODEL, version)
    assert champion(mlflow_client, MODEL) == version
    return Baseline(mlflow_client, features, trained, version, features["mlflow_run_id"])


@pytest.fixture
def assert_blocked(baseline: Baseline) -> Callable[..., None]:
    """The gate blocked: the champion did not move, and promotion refuses the version."""

    def check(version: str, model: str = MODEL, expected_champion: str | None = "baseline") -> None:
        from airflow.sdk.exceptions import AirflowFailException

        before = baseline.champion if expected_champion == "baseline" else expected_champion
        assert champion(baseline.client, model) == before
        with pytest.raises(AirflowFailException, match="Refusing to promote"):
            promote(model, version)
        assert champion(baseline.client, model) == before

    return check


__all__ = [
    "EXPERIMENT",
    "HERE",
    "MODEL",
    "POLICY",
    "SCENARIOS",
    "Baseline",
    "Callable",
    "GateOutcome",
    "context",
    "evaluate",
    "gate",
    "promote",
    "recorded_verdict",
    "run_gate",
    "simulate",
]
