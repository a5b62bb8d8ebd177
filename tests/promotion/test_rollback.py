"""Rollback (core and ``airflow-ml rollback``): restores the previous champion with the same checks as
promotion, and refuses with a clear reason when it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.cli.main import main
from airflow_ml_provider.promotion.attempt import promote, rollback
from airflow_ml_provider.promotion.lock import promotion_lock
from airflow_ml_provider.promotion.rule import Mode, Outcome, PromotionResult
from airflow_ml_provider.records.tags import (
    TAG_ATTEMPT_PREFIX,
    TAG_GATE_RUN,
    TAG_GATE_STATUS,
    TAG_MODEL_FINGERPRINT,
    previous_tag,
    rolled_back_tag,
)
from tests.promotion._support import Store, make_gated_versions, unique
from tests.support import champion


@pytest.fixture
def gated(session_store: Store, model_dirs: list[Path]) -> tuple[Store, str, list[str]]:
    name = unique("rollback")
    return session_store, name, make_gated_versions(session_store, model_dirs, name, count=3)


def _promote(store: Store, name: str, version: str, alias: str = "champion") -> PromotionResult:
    return promote(store.hook, name, version, alias=alias, actor="test")


def _rollback(store: Store, name: str, alias: str = "champion") -> PromotionResult:
    return rollback(store.hook, name, alias=alias, actor="test")


def attempts(store: Store, name: str, version: str) -> list[dict[str, Any]]:
    tags = store.client.get_model_version(name, version).tags
    return [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(TAG_ATTEMPT_PREFIX)]


def test_rollback_walks_back_the_recorded_champions(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, v2, v3) = gated
    for version in (v1, v2, v3):
        assert _promote(store, name, version).outcome is Outcome.PROMOTED
    result = _rollback(store, name)
    assert (result.mode, result.outcome) == (Mode.ROLLBACK, Outcome.RESTORED)
    assert (result.holder_before, result.holder_after, result.version) == (v3, v2, v2)
    assert champion(store.client, name) == v2
    tags = store.client.get_model_version(name, v3).tags
    marker = json.loads(tags[rolled_back_tag("champion")])
    assert marker["to"] == v2 and marker["by"] == "test" and marker["attempt_id"] == result.attempt_id
    # Recorded on the version rolled back from, next to its promotion attempt.
    assert [a["mode"] for a in attempts(store, name, v3)] == ["promote", "rollback"]
    assert attempts(store, name, v3)[-1] == result.to_dict()
    # The restored version keeps its own history, so a second rollback goes one step further back.
    assert store.client.get_model_version(name, v2).tags[previous_tag("champion")] == v1

    # A stale retry of v3's promotion does not put the rolled-back version back.
    again = _promote(store, name, v3)
    assert again.outcome is Outcome.REFUSED and "rolled back from version" in again.reason
    assert champion(store.client, name) == v2

    assert _rollback(store, name).holder_after == v1
    last = _rollback(store, name)
    assert last.outcome is Outcome.REFUSED
    assert f"version {v1} holds the alias but no previous holder was recorded" in last.reason
    assert champion(store.client, name) == v1
    assert attempts(store, name, v1)[-1]["outcome"] == "refused"

    # A newer gated version still wins afterwards.
    assert _promote(store, name, v2).outcome is Outcome.REFUSED  # v2 was rolled back from too
    store.client.delete_model_version_tag(name, v3, rolled_back_tag("champion"))
    assert _promote(store, name, v3).outcome is Outcome.PROMOTED


def test_rollback_without_a_champion_is_refused(gated: tuple[Store, str, list[str]]) -> None:
    store, name, _ = gated
    result = _rollback(store, name)
    assert result.outcome is Outcome.REFUSED
    assert "no version holds the alias" in result.reason
    assert champion(store.client, name) is None
    # Nothing to tag a version with: the attempt is recorded on the registered model.
    assert result.recorded_on == f"models:/{name}"
    tags = store.client.get_registered_model(name).tags
    assert [json.loads(v) for k, v in tags.items() if k.startswith(TAG_ATTEMPT_PREFIX)] == [result.to_dict()]


def test_rollback_after_a_single_promotion_has_no_previous_champion(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, _, _) = gated
    _promote(store, name, v1)
    result = _rollback(store, name)
    assert result.outcome is Outcome.REFUSED and "no previous holder was recorded" in result.reason
    assert champion(store.client, name) == v1
    assert rolled_back_tag("champion") not in store.client.get_model_version(name, v1).tags


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("verdict tag removed", "it has no passing gate verdict"),
        ("verdict failed", "its gate verdict is 'failed'"),
        ("fingerprint changed", "the gate verdict was given for a different model artifact fingerprint"),
        ("verdict artifact missing", "is missing"),
    ],
)
def test_rollback_is_refused_when_the_previous_champion_no_longer_passes(
    gated: tuple[Store, str, list[str]], damage: str, reason: str
) -> None:
    store, name, (v1, v2, _) = gated
    _promote(store, name, v1)
    _promote(store, name, v2)
    client = store.client
    if damage == "verdict tag removed":
        client.delete_model_version_tag(name, v1, TAG_GATE_STATUS)
    elif damage == "verdict failed":
        client.set_model_version_tag(name, v1, TAG_GATE_STATUS, "failed")
    elif damage == "fingerprint changed":
        client.set_model_version_tag(name, v1, TAG_MODEL_FINGERPRINT, "blake3:" + "0" * 64)
    else:
        empty = client.create_run(store.experiment_id, run_name="gate without a verdict")
        client.set_model_version_tag(name, v1, TAG_GATE_RUN, empty.info.run_id)
    result = _rollback(store, name)
    assert result.outcome is Outcome.REFUSED
    assert result.reason.startswith(f"version {v1} may not hold the alias: ") and reason in result.reason
    assert champion(store.client, name) == v2
    # Nothing moved and nothing was marked; the refusal is recorded on the champion.
    assert rolled_back_tag("champion") not in client.get_model_version(name, v2).tags
    assert attempts(store, name, v2)[-1]["outcome"] == "refused"


def test_rollback_is_refused_when_the_previous_champion_was_deleted(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, v2, _) = gated
    _promote(store, name, v1)
    _promote(store, name, v2)
    store.client.delete_model_version(name, v1)
    result = _rollback(store, name)
    assert result.outcome is Outcome.REFUSED and f"version {v1}, no longer exists" in result.reason
    assert champion(store.client, name) == v2


def test_each_alias_has_its_own_history(gated: tuple[Store, str, list[str]]) -> None:
    store, name, (v1, v2, v3) = gated
    _promote(store, name, v1, alias="staging")
    _promote(store, name, v3, alias="staging")
    _promote(store, name, v2)
    assert _rollback(store, name, alias="staging").holder_after == v1
    assert champion(store.client, name) == v2  # the champion is untouched
    assert _rollback(store, name).outcome is Outcome.REFUSED  # v2 was the first champion


# --- the CLI -------------------------------------------------------------------------------------


def test_cli_rollback(gated: tuple[Store, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    store, name, (v1, v2, _) = gated
    _promote(store, name, v1)
    _promote(store, name, v2)
    assert main(["rollback", name]) == 0
    out = capsys.readouterr().out
    assert f"rolled back: version {v2} -> version {v1}" in out
    assert champion(store.client, name) == v1
    by = attempts(store, name, v2)[-1]["by"]
    assert by.startswith("cli:")

    assert main(["rollback", name]) == 1
    captured = capsys.readouterr()
    assert "Refused: " in captured.err and "no previous holder was recorded" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert champion(store.client, name) == v1


def test_cli_rollback_reports_a_busy_lock_without_a_traceback(
    gated: tuple[Store, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, name, (v1, v2, _) = gated
    _promote(store, name, v1)
    _promote(store, name, v2)
    with promotion_lock(store.uri, name):
        assert main(["rollback", name, "--lock-timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert f"error: Rollback of alias 'champion' of {name!r} did not complete: Could not lock" in err
    assert "The alias was not changed." in err and "Traceback" not in err
    assert champion(store.client, name) == v2
    # The holder is only read under the lock, so the failed attempt is recorded on the registered model.
    tags = store.client.get_registered_model(name).tags
    assert [json.loads(v)["outcome"] for k, v in tags.items() if k.startswith(TAG_ATTEMPT_PREFIX)] == ["error"]


def test_cli_rollback_of_an_unknown_model(session_store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", unique("no_such_model")]) == 2
    err = capsys.readouterr().err
    assert "there is no registered model" in err and "Traceback" not in err
