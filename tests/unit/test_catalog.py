"""The Models page's pure shaping (plugins/catalog.py): history from attempt tags, rows, and scrubbing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_ml_provider.plugins.catalog import (
    CatalogError,
    _literal,
    alias_events,
    clean_tags,
    gate_metric_names,
    scrub,
    version_row,
)


@dataclass
class Version:
    """The fields of MLflow's ModelVersion the shaping reads (a plain record, not a mock of behaviour)."""

    version: str
    tags: dict[str, str] = field(default_factory=dict)
    creation_timestamp: int = 1_700_000_000_000
    name: str = "m"
    run_id: str | None = None


def attempt(outcome: str, version: str | None, before: str | None, after: str | None, at: str, mode: str = "promote",
            attempt_id: str = "a1") -> dict[str, str]:
    result = {
        "mode": mode, "outcome": outcome, "model_name": "m", "alias": "champion", "version": version,
        "holder_before": before, "holder_after": after, "reason": "r", "attempt_id": attempt_id, "at": at,
        "by": "airflow:d/r/promote#1", "recorded_on": None,
    }
    return {f"airflow_ml.promotion.{at}.{attempt_id}": json.dumps(result)}


def test_events_are_the_attempts_that_moved_an_alias_oldest_first() -> None:
    versions = [
        Version("1", attempt("promoted", "1", None, "1", "2026-01-01T00:00:00+00:00", attempt_id="p1")),
        Version("2", {
            **attempt("promoted", "2", "1", "2", "2026-01-02T00:00:00+00:00", attempt_id="p2"),
            **attempt("restored", "1", "2", "1", "2026-01-03T00:00:00+00:00", mode="rollback", attempt_id="r1"),
        }),
        Version("3", attempt("refused", "3", "1", "1", "2026-01-04T00:00:00+00:00", attempt_id="p3")),
        Version("4", {"airflow_ml.promotion.x.y": "{not json", "airflow_ml.promotion.x.z": json.dumps({"mode": 1})}),
    ]
    events = alias_events(versions)  # type: ignore[arg-type]
    assert [(e["kind"], e["version"], e["previous"]) for e in events] == [
        ("promotion", "1", None), ("promotion", "2", "1"), ("rollback", "1", "2"),
    ]


def test_a_row_marks_the_champion_and_keeps_what_the_tags_say() -> None:
    v = Version("3", {"airflow.dag_id": "d", "airflow.run_id": "r", "airflow_ml.gate.status": "failed",
                      "airflow_ml.reproduction_of": "models:/m/1"})
    row = version_row(v, {"champion": "3", "challenger": "3", "old": "1"}, {"accuracy": 0.9})  # type: ignore[arg-type]
    assert row["champion"] is True and row["aliases"] == ["challenger", "champion"]
    assert (row["dag_id"], row["dag_run_id"], row["gate_status"]) == ("d", "r", "failed")
    assert row["reproduction_of"] == "models:/m/1" and row["metrics"] == {"accuracy": 0.9}
    assert row["created"] == "2023-11-14T22:13:20Z"
    other = version_row(Version("4"), {"champion": "3"}, {})  # type: ignore[arg-type]
    assert other["champion"] is False and other["gate_status"] is None and other["dag_id"] is None


def test_gate_metrics_come_from_the_policy_only_when_it_has_a_metrics_table() -> None:
    assert gate_metric_names({"metrics": {"roc_auc": {}, "accuracy": {}}}) == ["accuracy", "roc_auc"]
    assert gate_metric_names({"metrics": ["accuracy"]}) == []
    assert gate_metric_names(None) == []


def test_scrub_strips_credentials_wherever_they_are() -> None:
    data: dict[str, Any] = {
        "uri": "https://bob:pw@host/x?token=abc&page=2",
        "nested": [{"password": "pw"}, "s3://key:secret@bucket/p"],
        "api_token": "t0k3n",
        "plain": "no credentials: here",
        "n": 3,
    }
    out = scrub(data)
    assert out["uri"] == "https://host/x?token=***&page=2"
    assert out["nested"] == [{"password": "***"}, "s3://bucket/p"]
    assert out["api_token"] == "***" and out["plain"] == "no credentials: here" and out["n"] == 3
    tags = clean_tags(Version("1", {"airflow.run_id": "https://u:p@h/r", "k": "v"}))  # type: ignore[arg-type]
    assert tags == {"airflow.run_id": "https://h/r", "k": "v"}


def test_filter_literals_pick_the_quote_the_value_lacks() -> None:
    assert _literal("plain") == "'plain'"
    assert _literal("it's") == '"it\'s"'
    with pytest.raises(CatalogError, match="both quote characters"):
        _literal("it's \"quoted\"")
