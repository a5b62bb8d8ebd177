"""Mistakes found where they are made: a bad policy or bad train/transform params.

A literal policy (or one templated only in its numbers) is checked when the DAG file is parsed, so
the mistake is a DAG import error naming the key. A templated policy is checked right after it is
rendered, before any evidence is read, and the version still gets a failed verdict saying why.
DAG files are parsed by a real ``DagBag``; run-time cases render with Airflow's own
``render_template_fields`` and record in the session's MLflow store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.gate.conftest import Baseline, context, gate, recorded_verdict
from tests.support import ROOT

HEADER = """
from airflow.sdk import DAG
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.train import TrainOperator
from airflow_ml_provider.sensors.model_gate import ModelGateSensor

def train(df, alpha: float = 1.0, seed: int = 0):
    return None

def transform(raw, clip_quantile: float = 0.995):
    return raw

with DAG(dag_id="user_dag", schedule=None):
"""


def import_errors(tmp_path: Path, body: str) -> list[str]:
    """Parse a DAG file holding ``body`` (one task) with a real DagBag; returns its import errors."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "user_dag.py").write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    "))
    return list(DagBag(dag_folder=str(tmp_path)).import_errors.values())


def sensor(policy: str) -> str:
    return f'ModelGateSensor(task_id="gate", model="models:/m/1", policy={policy})\n'


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            '{"metrics": {"rmse": {"treshold": 50}}}',
            [
                "ModelGateSensor 'gate': invalid policy: GatePolicy.metrics['rmse']: MetricThreshold has unknown keys "
                "'treshold'",
                "Did you mean 'threshold' for 'treshold'?",
            ],
        ),
        ('{"require_aproval": True}', ["GatePolicy has unknown keys 'require_aproval'", "'require_approval'"]),
        (
            '{"metrics": {"accuracy": {"threshold": "0.9"}}}',
            ["MetricThreshold.threshold must be a number, got the string '0.9': write it without quotes"],
        ),
        (
            '{"metrics": {"business_cost": {"threshold": 100}}}',
            ["'business_cost' is not a built-in metric", '"greater_is_better": true'],
        ),
        (
            '{"metrics": {"rmse": {"min_absolute_change": 0.0, "greater_is_better": True}}}',
            ["greater_is_better=True contradicts the built-in metric 'rmse', for which lower is better"],
        ),
        (  # templated only in its numbers (as the example DAG is): the rest is still checked at parse time
            '{"metrics": {"accuracy": {"threshold": "{{ params.min_accuracy }}", "min_absolute_chnage": -0.01}}}',
            ["unknown keys 'min_absolute_chnage'", "Did you mean 'min_absolute_change'"],
        ),
    ],
    ids=["typo in a rule", "typo at the top", "string threshold", "custom metric", "contradiction", "templated"],
)
def test_a_bad_literal_policy_is_a_dag_import_error(tmp_path: Path, policy: str, expected: list[str]) -> None:
    [error] = import_errors(tmp_path, sensor(policy))
    for text in expected:
        assert text in error, error


def test_a_policy_templated_beyond_its_numbers_parses_and_is_checked_at_run_time(tmp_path: Path) -> None:
    policy = '{"metrics": {"accuracy": {"threshold": 0.9}}, "require_approval": "{{ params.approve }}"}'
    assert import_errors(tmp_path, sensor(policy)) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'TrainOperator(task_id="train", features="f", train=train, target_column="y", registered_model_name="m",'
            ' train_params={"alpah": 0.5})\n',
            ["train ", "train(df, alpha: float = 1.0, seed: int = 0)", "unexpected keyword argument 'alpah'"],
        ),
        (
            'FeaturizeOperator(task_id="featurize", raw_uri="r.csv", transform=transform,'
            ' transform_params={"clip_quantil": "{{ params.q }}"})\n',
            ["transform(raw, clip_quantile: float = 0.995)", "unexpected keyword argument 'clip_quantil'"],
        ),
    ],
    ids=["train_params", "transform_params (templated value, literal name)"],
)
def test_params_that_do_not_fit_the_callable_are_a_dag_import_error(
    tmp_path: Path, body: str, expected: list[str]
) -> None:
    [error] = import_errors(tmp_path, body)
    for text in expected:
        assert text in error, error


def test_parsing_a_dag_with_checked_policy_and_params_imports_nothing_heavy() -> None:
    """Parse time stays zero: the checks are pure (the regression test DAG has a literal policy and params)."""
    code = textwrap.dedent(
        """
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder="tests/gate/dags/diabetes_dags.py")
        heavy = ("mlflow", "pandas", "sklearn", "great_expectations", "pyarrow", "openlineage.client")
        print(json.dumps({"errors": list(bag.import_errors.values()), "dags": sorted(bag.dag_ids),
                          "heavy": sorted(m for m in heavy if m in sys.modules)}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"errors": [], "dags": ["diabetes_retrain"], "heavy": []}


# --- run time: a templated policy, rendered ----------------------------------------------------------


def templated_gate(model: str, version: str) -> Any:
    return gate(
        model,
        version,
        policy={
            "metrics": {"accuracy": {"threshold": "{{ params.min_accuracy }}", "min_absolute_change": -0.01}},
            "required_suites": ["breast_cancer_raw", "breast_cancer_features"],
            "first_version": "allow",
        },
    )


def test_a_templated_threshold_rendered_as_text_is_read_as_a_number(baseline: Baseline) -> None:
    """Without render_template_as_native_obj, "{{ params.min_accuracy }}" renders as "0.9"."""
    version = baseline.candidate()
    sensor = templated_gate("gate_faults", version)
    sensor.render_template_fields({"params": {"min_accuracy": 0.9}})
    assert sensor.policy["metrics"]["accuracy"]["threshold"] == "0.9"

    assert sensor.execute(context("gate"))["passed"] is True

    verdict = recorded_verdict(baseline.client, "gate_faults", version)
    assert verdict is not None and verdict["policy"]["metrics"]["accuracy"]["threshold"] == 0.9
    reason = next(c["reason"] for c in verdict["checks"] if c["name"] == "metric:accuracy:threshold")
    assert reason.endswith("is at or above the minimum 0.900 (higher is better)")


def test_a_bad_templated_policy_fails_before_reading_evidence_and_records_why(baseline: Baseline) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    version = baseline.candidate()
    sensor = templated_gate("gate_faults", version)
    sensor.render_template_fields({"params": {"min_accuracy": "high"}})

    with pytest.raises(AirflowFailException) as excinfo:
        sensor.execute(context("gate"))

    assert "MetricThreshold.threshold must be a number, got the string 'high'" in str(excinfo.value)
    verdict = recorded_verdict(baseline.client, "gate_faults", version)
    assert verdict is not None and verdict["passed"] is False
    [check] = verdict["checks"]  # no evidence was read: the policy is the only check
    assert check["name"] == "policy" and not check["passed"]
    assert check["reason"].startswith("the gate policy is invalid, so no evidence was read: GatePolicy.metrics")
    assert verdict["policy"]["metrics"]["accuracy"]["threshold"] == "high"  # the policy as rendered
    tags = baseline.client.get_model_version("gate_faults", version).tags
    assert tags["airflow_ml.gate.status"] == "failed"
