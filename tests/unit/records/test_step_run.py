"""The DAG-run parent run's status from its step runs (pure: ``tracking.dag_run_status``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from airflow_ml_provider.records.step_run import dag_run_status


def step(task_id: str, status: str, try_number: int = 1, start: int = 0, map_index: int = -1) -> dict[str, Any]:
    return {"task_id": task_id, "status": status, "try_number": try_number, "start_time": start,
            "map_index": map_index}


PIPELINE = [step("featurize", "FINISHED"), step("train", "FINISHED", start=1)]


@pytest.mark.parametrize(
    "siblings, expected",
    [
        ([step("evaluate", "FINISHED", start=2), step("simulate", "FINISHED", start=2)], "FINISHED"),
        ([step("evaluate", "FAILED", start=2), step("simulate", "FINISHED", start=3)], "FAILED"),
        ([step("evaluate", "FINISHED", start=2), step("simulate", "FAILED", start=3)], "FAILED"),
        ([step("evaluate", "RUNNING", start=2), step("simulate", "FINISHED", start=3)], "RUNNING"),
        ([step("evaluate", "RUNNING", start=2), step("simulate", "FAILED", start=3)], "FAILED"),
    ],
)
def test_status_does_not_depend_on_the_order_steps_are_listed_or_end(siblings: list[Any], expected: str) -> None:
    for order in itertools.permutations([*PIPELINE, *siblings]):
        assert dag_run_status(order) == expected, order


def test_only_the_latest_try_of_a_task_counts() -> None:
    retried = [step("featurize", "FAILED", 1, start=0), step("featurize", "FINISHED", 2, start=5)]
    assert dag_run_status(retried) == "FINISHED"
    assert dag_run_status(list(reversed(retried))) == "FINISHED"
    assert dag_run_status([step("featurize", "FINISHED", 1), step("featurize", "FAILED", 2)]) == "FAILED"
    assert dag_run_status([step("featurize", "FAILED", 1), step("featurize", "RUNNING", 2)]) == "RUNNING"


def test_mapped_tasks_count_per_map_index() -> None:
    mapped = [step("score", "FINISHED", map_index=0), step("score", "FAILED", map_index=1)]
    assert dag_run_status(mapped) == "FAILED"


def test_a_killed_run_is_a_failure_and_nothing_recorded_is_not_finished() -> None:
    assert dag_run_status([step("train", "KILLED")]) == "FAILED"
    assert dag_run_status([step("train", "SCHEDULED")]) == "RUNNING"
    assert dag_run_status([]) == "RUNNING"
