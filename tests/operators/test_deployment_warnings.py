"""Settings that only hold on one machine are warned about in the task log, once, under a remote executor.

The executor is a user setting (``AIRFLOW__CORE__EXECUTOR``), set here for one test as a user sets it;
the operators run for real against the session's stores. Each test starts from a process that has
warned about nothing yet (the warnings are once per process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_ml_provider import deployment
from airflow_ml_provider.operators.featurize import FeaturizeOperator
from airflow_ml_provider.operators.promote import PromoteModelOperator
from tests.example import transform
from tests.support import make_context

DAG = "ops_deployment"


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set ``[core] executor`` for this test, in a process that has not warned yet."""
    monkeypatch.setattr(deployment, "_logged", set())

    def use(name: str) -> None:
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", name)

    return use


def warnings_from(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and text in r.getMessage()]


def featurize_twice(raw_data: Path) -> None:
    """Two featurize tasks in one process: the default artifact root is used twice."""
    for task_id in ("featurize_a", "featurize_b"):
        FeaturizeOperator(task_id=task_id, raw_uri=str(raw_data), transform=transform).execute(
            make_context(DAG, task_id)
        )


@pytest.mark.parametrize(("name", "warned"), [("CeleryExecutor", 1), ("LocalExecutor", 0)])
def test_default_artifact_root_is_warned_about_once_under_a_remote_executor(
    name: str, warned: int, executor: Any, raw_data: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT")  # the worker-local default
    executor(name)
    default_root = os.path.join(os.environ["AIRFLOW_HOME"], "ml_artifacts")

    featurize_twice(raw_data)

    found = warnings_from(caplog, "[ml_provider] artifact_root is not set")
    assert len(found) == warned, found
    if warned:
        assert default_root in found[0] and "CeleryExecutor" in found[0]
        assert "AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT" in found[0]


def test_an_artifact_root_that_is_set_is_not_warned_about(
    executor: Any, raw_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executor("CeleryExecutor")  # the session sets AIRFLOW__ML_PROVIDER__ARTIFACT_ROOT (tests/conftest.py)
    featurize_twice(raw_data)
    assert warnings_from(caplog, "artifact_root") == []


@pytest.mark.parametrize(("name", "warned"), [("CeleryExecutor", 1), ("LocalExecutor", 0)])
def test_file_lock_is_warned_about_once_where_promotion_happens(
    name: str, warned: int, executor: Any, trained: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The session's registry is SQLite: promotion takes a file lock. The version has no verdict, so each
    attempt is refused, after the lock was taken."""
    executor(name)
    for attempt in ("promote_a", "promote_b"):
        with pytest.raises(AirflowFailException, match="Refusing to promote"):
            PromoteModelOperator(task_id=attempt, model=trained["result"]).execute(make_context(DAG, attempt))

    found = warnings_from(caplog, "Promotions are serialised by a file lock")
    assert len(found) == warned, found
    if warned:
        assert "CeleryExecutor" in found[0] and "AIRFLOW__ML_PROVIDER__LOCK_URI" in found[0]
