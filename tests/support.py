"""Test doubles shared by the test packages."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeTaskInstance:
    """Test double of Airflow's RuntimeTaskInstance: only what the operators and the gate read.

    Tests that call ``execute()``/``poke()`` directly use it; the DAG-level tests run real task
    instances with ``dag.test()``.
    """

    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1
    xcoms: Mapping[str, Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str | None = None, **_: Any) -> Any:
        return self.xcoms.get(task_ids) if task_ids is not None else None

    def get_first_reschedule_date(self, context: Any) -> Any:
        return None  # the first try: no reschedule yet


def make_context(
    dag_id: str, task_id: str, run_id: str | None = None, xcoms: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A task context; a fresh DAG run id per call unless given, so each test's MLflow runs are its own."""
    run_id = run_id or f"manual__test_{uuid.uuid4().hex[:12]}"
    return {"ti": FakeTaskInstance(dag_id, run_id, task_id, xcoms=dict(xcoms or {}))}
