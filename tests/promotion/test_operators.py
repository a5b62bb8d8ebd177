"""PromoteModelOperator and RollbackModelOperator, called as Airflow calls them (``execute(context)``):
what each outcome does to the task, and what the step record and the version say afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.operators.promote import PromoteModelOperator
from airflow_ml_provider.operators.rollback import RollbackModelOperator
from airflow_ml_provider.promotion.attempt import promote
from airflow_ml_provider.records.tags import TAG_ATTEMPT_PREFIX, TAG_PROMOTED_BY
from tests.promotion._support import Store, make_gated_versions, unique
from tests.support import make_context, read_record

DAG_ID = "promotion_operator_tests"


def context(task_id: str) -> dict[str, Any]:
    return make_context(DAG_ID, task_id)


@pytest.fixture
def gated(session_store: Store, model_dirs: list[Path]) -> tuple[Store, str, list[str]]:
    name = unique("operators")
    return session_store, name, make_gated_versions(session_store, model_dirs, name, count=3)


def last_attempt(store: Store, name: str, version: str) -> dict[str, Any]:
    tags = store.client.get_model_version(name, version).tags
    return json.loads(tags[max(k for k in tags if k.startswith(TAG_ATTEMPT_PREFIX))])


def run_promote(name: str, version: str) -> tuple[Any, dict[str, Any]]:
    ctx = context("promote")
    return PromoteModelOperator(task_id="promote", model=f"models:/{name}/{version}").execute(ctx), ctx


def test_promote_then_promote_again(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, _, _) = gated
    returned, ctx = run_promote(name, v1)
    assert returned == {"model_name": name, "version": v1, "alias": "champion", "previous": None, "outcome": "promoted"}
    attempt = last_attempt(store, name, v1)
    assert attempt["outcome"] == "promoted" and attempt["by"].startswith(
        f"airflow:{DAG_ID}/{ctx['ti'].run_id}/promote#1"
    )
    # The attempt id is the step's MLflow run: its record holds the same result.
    record = read_record(store.client, attempt["attempt_id"])
    assert record.status == "success" and record.results.to_dict() == attempt
    assert store.client.get_model_version(name, v1).tags[TAG_PROMOTED_BY] == attempt["attempt_id"]

    returned, _ = run_promote(name, v1)
    assert returned["outcome"] == "unchanged"
    assert store.hook.alias_version(name, "champion") == v1


def test_an_older_version_is_skipped_with_the_reason(gated: tuple[Store, str, list[str]]) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    store, name, (v1, v2, _) = gated
    promote(store.hook, name, v2)
    with pytest.raises(AirflowSkipException, match=f"the alias points to newer version {v2}"):
        run_promote(name, v1)
    assert store.hook.alias_version(name, "champion") == v2
    attempt = last_attempt(store, name, v1)
    assert attempt["outcome"] == "superseded"
    # A correct outcome, not a failure: the step run closed as a success with the decision in its record.
    record = read_record(store.client, attempt["attempt_id"])
    assert record.status == "success" and record.results.outcome.value == "superseded"


def test_a_version_without_a_passing_verdict_fails_the_task(gated: tuple[Store, str, list[str]]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_ml_provider.records.tags import TAG_GATE_STATUS

    store, name, (v1, _, _) = gated
    store.client.set_model_version_tag(name, v1, TAG_GATE_STATUS, "failed")
    with pytest.raises(AirflowFailException, match="Refusing to promote .*its gate verdict is 'failed'"):
        run_promote(name, v1)
    assert store.hook.alias_version(name, "champion") is None
    attempt = last_attempt(store, name, v1)
    assert attempt["outcome"] == "refused"
    record = read_record(store.client, attempt["attempt_id"])
    assert record.status == "failed" and record.results.outcome.value == "refused"


def test_rollback_operator(gated: tuple[Store, str, list[str]]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    store, name, (v1, v2, _) = gated
    run_promote(name, v1)
    run_promote(name, v2)
    op = RollbackModelOperator(task_id="rollback", model_name=name)
    returned = op.execute(context("rollback"))
    assert returned == {"model_name": name, "alias": "champion", "version": v1, "rolled_back_from": v2}
    assert store.hook.alias_version(name, "champion") == v1
    attempt = last_attempt(store, name, v2)
    assert attempt["mode"] == "rollback" and attempt["outcome"] == "restored"
    record = read_record(store.client, attempt["attempt_id"])
    assert record.status == "success" and record.model and record.model.version == v1
    assert [d.name for d in op._lineage_inputs] == [f"models:/{name}/{v2}", f"models:/{name}/{v1}"]

    with pytest.raises(AirflowFailException, match="Cannot roll back alias 'champion'.*no previous holder"):
        RollbackModelOperator(task_id="rollback", model_name=name).execute(context("rollback"))
    assert store.hook.alias_version(name, "champion") == v1


def test_rollback_is_registered_with_the_provider() -> None:
    from airflow_ml_provider.get_provider_info import get_provider_info

    modules = get_provider_info()["operators"][0]["python-modules"]
    assert "airflow_ml_provider.operators.rollback" in modules
