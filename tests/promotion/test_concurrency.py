"""Eight concurrent promotions of different versions, from eight real processes released together by a
barrier, against MLflow on SQLite and on the local PostgreSQL server: the alias ends where the rule
says (the highest version), every attempt is recorded, and no raw database error reaches anyone.

And the reason for all this: without the lock, eight processes setting the alias directly end
wherever the last writer left it, and some of them get raw database errors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_ml_provider.promotion.rule import Outcome
from airflow_ml_provider.records.tags import TAG_ATTEMPT_PREFIX, previous_tag
from tests.promotion._support import VERSIONS, Store, make_gated_versions, unique

ROUNDS = 3  # fresh model per round; the workers stay up, so extra rounds cost about a second each
RAW_DATABASE_TEXT = (
    "sqlite3.",
    "psycopg2.",
    "IntegrityError",
    "UNIQUE constraint",
    "duplicate key",
    "OperationalError",
    "sqlalche.me",
    "[SQL:",
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    return request.getfixturevalue({"sqlite": "sqlite_store", "postgresql": "postgres_store"}[request.param])


def attempts(store: Store, name: str, version: str) -> list[dict[str, Any]]:
    tags = store.client.get_model_version(name, version).tags
    return [json.loads(value) for key, value in tags.items() if key.startswith(TAG_ATTEMPT_PREFIX)]


def check_round(store: Store, name: str, versions: list[str], seen: list[dict[str, Any]]) -> list[str]:
    """Everything the issue asks of one round; returns the versions that were promoted, in order."""
    # No process got an exception: no raw database error (nor any other) reached a user.
    errors = [(s["version"], s.get("error_type"), s.get("error")) for s in seen if "result" not in s]
    assert not errors, f"promotions that did not complete on {store.kind}: {errors}"
    results = {s["version"]: s["result"] for s in seen}
    for result in results.values():
        text = json.dumps(result)
        assert not [t for t in RAW_DATABASE_TEXT if t in text], text

    # The alias ends where the rule predicts: the highest version.
    newest = max(versions, key=int)
    assert store.hook.alias_version(name, "champion") == newest

    # Each attempt was decided by the rule: promoted over an older (or no) holder, or superseded by a newer one.
    for version, result in results.items():
        before = result["holder_before"]
        if result["outcome"] == Outcome.PROMOTED.value:
            assert before is None or int(before) < int(version), result
            assert result["holder_after"] == version
        else:
            assert result["outcome"] == Outcome.SUPERSEDED.value, result
            assert before is not None and int(before) > int(version), result
    assert results[newest]["outcome"] == Outcome.PROMOTED.value

    # Serialised: the promoted versions form one chain, each recording the one before it as previous
    # champion (two promoters that both saw the same holder would break the chain).
    promoted = sorted((v for v, r in results.items() if r["outcome"] == "promoted"), key=int)
    chain = [None, *promoted[:-1]]
    for version, previous in zip(promoted, chain, strict=True):
        assert results[version]["holder_before"] == previous, (version, results[version])
        tags = store.client.get_model_version(name, version).tags
        assert tags[previous_tag("champion")] == (previous or "none")

    # Every attempt is recorded, on its version, exactly as the process was told.
    for version, result in results.items():
        recorded = attempts(store, name, version)
        assert recorded == [result], (version, recorded, result)
        assert result["recorded_on"] == f"models:/{name}/{version}"
    return promoted


def test_eight_concurrent_promotions_end_with_the_newest_version(
    store: Store, model_dirs: list[Path], race_pool: Any
) -> None:
    timings = []
    for round_ in range(ROUNDS):
        name = unique(f"race_{store.kind}_{round_}")
        versions = make_gated_versions(store, model_dirs, name)
        assert len(versions) == VERSIONS
        # Worker i promotes versions[i]; reversed so that low versions are not favoured by start order.
        started = time.monotonic()
        seen = race_pool.race("promote", store.uri, name, list(reversed(versions)), lock_timeout=120.0)
        timings.append(time.monotonic() - started)
        promoted = check_round(store, name, versions, seen)
        slowest = max(s["seconds"] for s in seen)
        print(f"[{store.kind} round {round_}: promoted in order {promoted}; slowest promotion {slowest:.2f}s]")
    seconds = ", ".join(f"{t:.1f}s" for t in timings)
    print(f"[{store.kind}: {ROUNDS} rounds of {VERSIONS} concurrent promotions: {seconds}]")


def test_without_the_lock_the_last_writer_wins_and_raw_errors_escape(sqlite_store: Store, race_pool: Any) -> None:
    """What MLflow alone does with the same race (set_registered_model_alias from eight processes).

    One round may happen to end on the highest version with no error, so several rounds are run, each
    on a fresh alias; across them the race shows every time this was tried (UNIQUE constraint errors
    from the alias upsert, and an alias left on whichever version wrote last).
    """
    store = sqlite_store
    name = unique("nolock")
    store.client.create_registered_model(name)
    versions = [
        str(store.client.create_model_version(name, f"file:///nonexistent/{i}").version) for i in range(VERSIONS)
    ]
    wrong_final, raw_errors = 0, []
    for round_ in range(10):
        alias = f"race{round_}"
        seen = race_pool.race("set_alias_without_lock", store.uri, name, versions, alias=alias)
        raw_errors += [s["error"] for s in seen if "error" in s]
        wrong_final += store.hook.alias_version(name, alias) != versions[-1]
    print(f"[without the lock: {wrong_final}/10 rounds ended off the newest version; {len(raw_errors)} raw errors]")
    assert wrong_final or raw_errors, "the race did not show in 10 rounds"
    for error in raw_errors:
        assert "IntegrityError" in error or "UNIQUE constraint" in error or "database is locked" in error, error
