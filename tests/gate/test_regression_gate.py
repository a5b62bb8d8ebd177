"""Issue 8's user case end to end: a regression model, an rmse policy, and a much worse candidate.

``policy={"metrics": {"rmse": {"min_absolute_change": 0.0}}}`` used to promote a worse model: every
metric was taken as higher-is-better, so an rmse that grew by 11.5 passed as a "+11.5 change". Two
runs of tests/gate/dags/diabetes_dags.py with ``dag.test()`` (scikit-learn's bundled diabetes data,
Ridge): the first promotes, the second (a heavily regularised, much worse Ridge) must be blocked
with a reason that says lower is better, and the champion must stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gate.conftest import recorded_verdict
from tests.gate.test_dags import DagRun
from tests.support import STATE, champion

MODEL = "diabetes_regressor"
ALL_TASKS = ("featurize", "train", "evaluate", "simulate", "gate", "promote")
pytestmark = pytest.mark.dag


@pytest.fixture(scope="module")
def diabetes_raw(airflow_db: Path) -> Path:
    from sklearn.datasets import load_diabetes

    path = STATE / "data" / "diabetes.parquet"
    load_diabetes(as_frame=True).frame.to_parquet(path, index=False)
    return path


def _latest(client: Any) -> str:
    return str(max(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")))


def _rmse(client: Any, version: str) -> float:
    run_id = client.get_model_version(MODEL, version).tags["airflow_ml.evidence.evaluate"]
    return float(client.get_run(run_id).data.metrics["rmse"])


def test_a_worse_regression_model_is_blocked_by_an_rmse_policy(diabetes_raw: Path, mlflow_client: Any) -> None:
    first = DagRun("diabetes_retrain", {"raw_uri": str(diabetes_raw), "alpha": 1.0})
    result = first.result()
    assert result["tasks"] == dict.fromkeys(ALL_TASKS, "success"), first.output[-6000:]
    promoted = _latest(mlflow_client)
    assert champion(mlflow_client, MODEL) == promoted

    second = DagRun("diabetes_retrain", {"raw_uri": str(diabetes_raw), "alpha": 1000.0})
    result = second.result()

    tasks = result["tasks"]
    assert tasks["gate"] == "failed" and tasks["promote"] == "upstream_failed", second.output[-6000:]
    candidate = _latest(mlflow_client)
    assert candidate != promoted
    assert champion(mlflow_client, MODEL) == promoted
    worse, better = _rmse(mlflow_client, candidate), _rmse(mlflow_client, promoted)
    assert worse > better + 10  # alpha=1000 reached Ridge as a number: the model really is much worse
    verdict = recorded_verdict(mlflow_client, MODEL, candidate)
    assert verdict is not None and verdict["passed"] is False
    failures = {c["name"]: c["reason"] for c in verdict["checks"] if not c["passed"]}
    assert set(failures) == {"metric:rmse:vs_champion_absolute"}
    reason = failures["metric:rmse:vs_champion_absolute"]
    assert reason.startswith(f"rmse {worse:.3f} vs champion v{promoted} {better:.3f}: worse by "), reason
    assert reason.endswith("; the policy requires no worse (lower is better)"), reason
    assert verdict["policy"]["metrics"]["rmse"]["greater_is_better"] is False  # recorded, not implied
    # the verdict table in the task log fits the log viewer: the long reason wraps
    start = next(i for i, line in enumerate(second.lines) if line.startswith("metric:rmse:vs_champion_absolute "))
    row = second.lines[start : start + 2]
    assert all(len(line) <= 120 for line in row) and row[1].rstrip().endswith("(lower is better)"), row
