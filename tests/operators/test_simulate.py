"""SimulateOperator: a malformed scenario file fails the task; a failing scenario is recorded, not raised."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_ml_provider.operators.simulate import SimulateOperator
from airflow_ml_provider.records.tags import evidence_tag
from airflow_ml_provider.scenarios.spec import ScenarioFileError
from tests.operators._support import assert_step_failed, assert_step_succeeded, the_step_run
from tests.operators.conftest import SCENARIOS
from tests.support import make_context

DAG = "ops_simulate"


def simulator(model: Any, scenarios: Path | str) -> SimulateOperator:
    return SimulateOperator(task_id="simulate", model=model, scenarios=str(scenarios))


def example_scenarios() -> list[dict[str, Any]]:
    return yaml.safe_load(SCENARIOS.read_text())["scenarios"]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("scenarios:\n  - name: no_expectation\n    rows: [{mean_radius: 1.0}]\n", "'expect' is required"),
        ("scenarios: [unterminated\n", "invalid YAML"),
        ("scenarios: []\n", "non-empty list"),
    ],
    ids=["missing-expect", "bad-yaml", "empty"],
)
def test_malformed_scenario_file(
    trained: dict[str, Any], tmp_path: Path, client: Any, content: str, detail: str
) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(content)
    op = simulator(trained["result"], path)
    context = make_context(DAG, op.task_id)

    with pytest.raises(ScenarioFileError) as excinfo:
        op.execute(context)

    assert str(path) in str(excinfo.value) and detail in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, str(path), detail)
    tags = client.get_model_version(trained["result"]["model_name"], trained["result"]["version"]).tags
    assert tags.get(evidence_tag("simulate")) != the_step_run(client, context).info.run_id


def test_missing_scenario_file(trained: dict[str, Any], tmp_path: Path, client: Any) -> None:
    path = tmp_path / "absent.yaml"
    op = simulator(trained["result"], path)
    context = make_context(DAG, op.task_id)
    with pytest.raises(ScenarioFileError) as excinfo:
        op.execute(context)
    assert str(path) in str(excinfo.value) and "not found" in str(excinfo.value)
    assert_step_failed(client, context, excinfo.value, str(path))


def test_failing_scenario_is_recorded_not_raised(trained: dict[str, Any], tmp_path: Path, client: Any) -> None:
    scenarios = example_scenarios()
    benign = scenarios[0]
    assert benign["name"] == "typical_benign" and benign["expect"] == {"equals": 1}
    wrong = copy.deepcopy(benign)
    wrong.update(name="benign_called_malignant", expect={"equals": 0})
    path = tmp_path / "scenarios.yaml"
    path.write_text(yaml.safe_dump({"scenarios": [benign, wrong]}, sort_keys=False))

    op = simulator(trained["result"], path)
    context = make_context(DAG, op.task_id)
    out = op.execute(context)  # does not raise: the gate decides

    assert out["passed"] is False and out["failed"] == ["benign_called_malignant"]
    record = assert_step_succeeded(client, context)
    results = {r.name: r for r in record.results.scenarios.results}
    assert results["typical_benign"].passed is True
    assert results["benign_called_malignant"].passed is False
    assert "0" in results["benign_called_malignant"].reason
    result = trained["result"]
    tags = client.get_model_version(result["model_name"], result["version"]).tags
    assert tags[evidence_tag("simulate")] == record.mlflow_run_id
    run = client.get_run(record.mlflow_run_id)
    assert run.data.metrics["scenario.benign_called_malignant"] == 0.0
    assert run.data.metrics["scenarios_passed"] == 1.0 and run.data.metrics["scenarios_total"] == 2.0
    assert record.model is not None and record.model.fingerprint == result["model_fingerprint"]
