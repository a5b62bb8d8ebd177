"""Tests-only DAG: one DriftOperator on the example's champion, for the failure paths of
tests/dag/test_monitor_and_retrain.py (not enough data, drift failing the task, a changed reference).

``current`` is the batch's features, ``min_rows`` the policy's, ``alerts`` the file a real notifier
(a ``BaseNotifier``) appends each drift alert to.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import DAG, BaseNotifier, Param

from airflow_ml_provider.operators.drift import DriftOperator


class FileNotifier(BaseNotifier):
    """Appends the drift report, with the task id, to a file."""

    template_fields = ("path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def notify(self, context: Any) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(dict(context["drift_report"], task_id=context["ti"].task_id)) + "\n")


with DAG(
    dag_id="drift_checks",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "current": Param("", type="string"),
        "min_rows": Param(100, type="integer"),
        "alerts": Param("/dev/null", type="string"),
    },
):
    DriftOperator(
        task_id="drift",
        model="models:/breast_cancer_classifier@champion",
        current="{{ params.current }}",
        policy={"min_rows": "{{ params.min_rows }}"},
        notifiers=[FileNotifier("{{ params.alerts }}")],
    )
