"""Attempts that cannot complete: a clear error that says whether the alias moved and what to do,
recorded when the registry allows it; the database's own error text is never the message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.promotion.attempt import Outcome, PromotionError, promote
from airflow_ml_provider.promotion.lock import promotion_lock
from airflow_ml_provider.records.tags import TAG_ATTEMPT_PREFIX
from tests.promotion._support import Store, make_gated_versions, unique

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
        ("download_artifacts", "while reading the gate verdict of version", "The alias 'champion' was not changed."),
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
