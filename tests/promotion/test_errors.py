"""Attempts that cannot complete: a clear error that says whether the alias moved and what to do,
recorded when the registry allows it; the database's own error text is never the message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.promotion.attempt import PromotionError, promote
from airflow_ml_provider.promotion.lock import promotion_lock
from airflow_ml_provider.promotion.rule import Outcome
from airflow_ml_provider.records.tags import TAG_ATTEMPT_PREFIX
from tests.promotion._support import Store, make_gated_versions, passing_verdict, unique

RAW = "(psycopg2.OperationalError) server closed the connection unexpectedly [SQL: UPDATE ...]"


@pytest.fixture
def gated(session_store: Store, model_dirs: list[Path]) -> tuple[Store, str, list[str]]:
    name = unique("errors")
    return session_store, name, make_gated_versions(session_store, model_dirs, name, count=2)


def attempts(store: Store, name: str, version: str) -> list[dict[str, Any]]:
    tags = store.client.get_model_version(name, version).tags
    return [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(TAG_ATTEMPT_PREFIX)]


def test_a_busy_lock_is_a_clear_error_and_is_recorded(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, _) = gated
    with promotion_lock(store.uri, name), pytest.raises(PromotionError) as caught:
        promote(store.hook, name, v1, lock_timeout=0.3)
    message = str(caught.value)
    assert message.startswith(f"Promotion of models:/{name}/{v1} to alias 'champion' did not complete: ")
    assert "Could not lock promotion" in message and message.endswith("The alias was not changed.")
    assert store.hook.alias_version(name, "champion") is None
    assert [a["outcome"] for a in attempts(store, name, v1)] == ["error"]
    assert caught.value.result is not None and caught.value.result.outcome is Outcome.ERROR


class FailingClient:
    """The hook's real client, except that one registry call fails the way MLflow reports a database error."""

    def __init__(self, client: Any, method: str) -> None:
        self._client = client
        self._method = method

    def __getattr__(self, name: str) -> Any:
        if name == self._method:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise MlflowException(RAW, error_code=TEMPORARILY_UNAVAILABLE)

            return fail
        return getattr(self._client, name)


@pytest.mark.parametrize(
    ("method", "step", "state"),
    [
        ("get_model_version_by_alias", "while reading alias 'champion'", "The alias 'champion' was not changed."),
        (
            "download_artifact_file",
            "while reading the gate verdict of version",
            "The alias 'champion' was not changed.",
        ),
        (
            "set_registered_model_alias",
            "while moving alias 'champion' to version",
            "The alias 'champion' may already have moved: run `airflow-ml status",
        ),
    ],
)
def test_a_database_error_is_wrapped_with_what_happened_and_what_to_do(
    gated: tuple[Store, str, list[str]], method: str, step: str, state: str
) -> None:
    store, name, (v1, _) = gated
    from airflow_ml_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook(tracking_uri=store.uri)
    failing = FailingClient(hook.get_client(), method)
    hook.get_client = lambda: failing  # type: ignore[method-assign]
    with pytest.raises(PromotionError) as caught:
        promote(hook, name, v1)
    message = str(caught.value)
    assert step in message and "(MLflow error TEMPORARILY_UNAVAILABLE)" in message and state in message
    assert "Check that the registry is reachable and retry; retrying is safe" in message
    assert "psycopg2" not in message and "SQL" not in message
    assert isinstance(caught.value.__cause__, Exception)  # the original stays chained for the task log
    assert attempts(store, name, v1)[-1]["outcome"] == "error"


def test_a_passing_verdict_that_cannot_be_recorded_fails_the_gate(gated: tuple[Store, str, list[str]]) -> None:
    """The version vanished between the decision and the recording: the sensor fails (nothing to promote on),
    saying why, and the gate's step run is FAILED, not left RUNNING or FINISHED."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.model.reference import ModelRef
    from airflow_ml_provider.records.tags import KIND_STEP, TAG_DAG_ID, TAG_KIND, TAG_STEP
    from airflow_ml_provider.sensors.model_gate import ModelGateSensor
    from tests.support import make_context

    store, name, (v1, _) = gated
    store.client.delete_model_version(name, v1)
    experiment = store.client.get_experiment(store.experiment_id).name
    sensor = ModelGateSensor(task_id="gate", model=f"models:/{name}/{v1}", policy={}, experiment_name=experiment)
    dag_id = f"gate_{unique('gone')}"
    with pytest.raises(AirflowFailException, match="gate passed but the verdict could not be recorded in MLflow"):
        verdict = passing_verdict(name, v1, "blake3:x")
        sensor._record(store.hook, ModelRef(name, v1), verdict, make_context(dag_id, "gate"))
    runs = store.client.search_runs(
        [store.experiment_id], f"tags.`{TAG_KIND}` = '{KIND_STEP}' and tags.`{TAG_STEP}` = 'gate' "
        f"and tags.`{TAG_DAG_ID}` = '{dag_id}'"
    )
    assert [run.info.status for run in runs] == ["FAILED"]
