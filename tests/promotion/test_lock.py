"""The promotion lock: a PostgreSQL advisory lock for a PostgreSQL registry (across processes and
machines), a file lock otherwise; a lock that cannot be had in time is a clear error, and database
errors never reach the user bare."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_ml_provider.promotion.lock import (
    ADVISORY_NAMESPACE,
    LockError,
    LockTimeout,
    advisory_key,
    is_postgres_uri,
    promotion_lock,
)
from airflow_ml_provider.records.redaction import strip_credentials
from tests.promotion._support import unique

RAW_DRIVER_TEXT = ("(psycopg2.", "sqlalche.me", "OperationalError", "Connection refused", "could not connect", "SQL:")


def test_which_uris_are_postgres() -> None:
    assert is_postgres_uri("postgresql://u@h/db")
    assert is_postgres_uri("postgresql+psycopg2://u:p@h:5432/db")
    assert is_postgres_uri("POSTGRESQL+psycopg://h/db")
    for other in ("sqlite:////tmp/x.db", "http://mlflow:5000", "mysql://h/db", "postgresql", "", None, "file:///x"):
        assert not is_postgres_uri(other), other


def test_lock_messages_hide_the_password() -> None:
    redact = functools.partial(strip_credentials, keep_user=True)
    assert redact("postgresql+psycopg2://bob:s3cret@db:5432/mlflow") == "postgresql+psycopg2://bob:***@db:5432/mlflow"
    assert redact("postgresql://bob@db/mlflow") == "postgresql://bob@db/mlflow"


def test_advisory_keys_are_stable_int4_pairs_per_model() -> None:
    ns, key = advisory_key("fraud")
    assert ns == ADVISORY_NAMESPACE and 0 <= key < 2**31
    assert advisory_key("fraud") == (ns, key) and advisory_key("churn") != (ns, key)


# --- file lock -----------------------------------------------------------------------------------


def test_file_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with promotion_lock(uri, "m", timeout=5) as held:
        assert held.kind == "none"
        held.verify()
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with promotion_lock(uri, "m", timeout=0.3):
                pass
        assert 0.25 < time.monotonic() - started < 5
        assert "Could not lock promotion of 'm' within 0.3s" in str(caught.value)
        assert "Retry when it has finished" in str(caught.value)
        with promotion_lock(uri, "another-model", timeout=0.3):
            pass  # other models are not blocked
    with promotion_lock(uri, "m", timeout=0.3):
        pass  # released


def test_file_lock_is_the_same_for_two_spellings_of_one_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with promotion_lock(f"sqlite:///{tmp_path / 'mlflow.db'}", "m"):
        with pytest.raises(LockTimeout):
            with promotion_lock("sqlite:///mlflow.db", "m", timeout=0.2):
                pass


def test_a_lock_uri_that_is_not_postgres_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="not a PostgreSQL URI"):
        with promotion_lock(f"sqlite:///{tmp_path / 'x.db'}", "m", lock_uri="mysql://h/db"):
            pass


# --- PostgreSQL advisory lock --------------------------------------------------------------------


def _holders(admin_uri: str, model: str) -> int:
    import psycopg2

    ns, key = advisory_key(model)
    dbname = admin_uri.rsplit("/", 1)[1]
    with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s",
            (ns, key),
        )
        return int(cur.fetchone()[0])


def test_advisory_lock_serialises_and_times_out_with_a_clear_error(postgres_uri: str) -> None:
    model = unique("lock")
    with promotion_lock(postgres_uri, model, timeout=5) as held:
        assert held.kind == "postgresql-advisory"
        held.verify()
        assert _holders(postgres_uri, model) == 1
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            with promotion_lock(postgres_uri, model, timeout=0.5):
                pass
        assert 0.4 < time.monotonic() - started < 10
        message = str(caught.value)
        assert f"Could not lock promotion of {model!r} within 0.5s" in message
        assert "PostgreSQL advisory lock" in message and "pg_locks" in message
        assert not [t for t in RAW_DRIVER_TEXT if t in message], message
        with promotion_lock(postgres_uri, unique("other"), timeout=0.5):
            pass  # other models are not blocked
    assert _holders(postgres_uri, model) == 0
    with promotion_lock(postgres_uri, model, timeout=0.5):
        pass


def test_a_killed_holder_never_leaves_the_lock_behind(postgres_uri: str) -> None:
    """The server drops a session's advisory locks when its connection dies: no stale lock."""
    model = unique("killed")
    code = textwrap.dedent(
        f"""
        import sys, time
        from airflow_ml_provider.promotion.lock import promotion_lock
        with promotion_lock({postgres_uri!r}, {model!r}, timeout=30):
            print("held", flush=True)
            time.sleep(600)
        """
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout):
            with promotion_lock(postgres_uri, model, timeout=0.5):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with promotion_lock(postgres_uri, model, timeout=30):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_losing_the_lock_connection_is_detected_before_writing(postgres_uri: str) -> None:
    import psycopg2

    model = unique("lost")
    with promotion_lock(postgres_uri, model, timeout=5) as held:
        pid = held.connection.execute(__import__("sqlalchemy").text("SELECT pg_backend_pid()")).scalar()  # type: ignore[attr-defined]
        dbname = postgres_uri.rsplit("/", 1)[1]
        with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname) as admin:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(LockError, match="Lost the connection that holds the promotion lock") as caught:
            held.verify()
        assert not [t for t in RAW_DRIVER_TEXT if t in str(caught.value)]


def test_an_unreachable_lock_database_is_a_clear_error(tmp_path: Path) -> None:
    uri = "postgresql+psycopg2://postgres:topsecret@127.0.0.1:1/mlflow"
    with pytest.raises(LockError) as caught:
        with promotion_lock(f"sqlite:///{tmp_path / 'x.db'}", "m", timeout=2, lock_uri=uri):
            pass
    message = str(caught.value)
    assert message.startswith("Cannot connect to the PostgreSQL database of the MLflow registry")
    assert "postgresql+psycopg2://postgres:***@127.0.0.1:1/mlflow" in message and "topsecret" not in message
    assert "Check that the server is running and reachable from this worker" in message
    assert not [t for t in RAW_DRIVER_TEXT if t in message], message


# --- drivers: SQLAlchemy 2.1 maps postgresql:// to psycopg 3; postgresql+psycopg2:// is psycopg2 ----------


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg", "postgresql+psycopg2"])
def test_the_advisory_lock_works_with_both_drivers(postgres_uri: str, scheme: str) -> None:
    uri = scheme + "://" + postgres_uri.split("://", 1)[1]
    model = unique("driver")
    with promotion_lock(uri, model, timeout=5) as held:
        assert held.kind == "postgresql-advisory"
        held.verify()
        assert _holders(postgres_uri, model) == 1
    assert _holders(postgres_uri, model) == 0


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_a_server_that_never_answers_is_bounded_by_the_connect_timeout(tmp_path: Path, scheme: str) -> None:
    """A TCP peer that accepts and then says nothing (a hung server, a black-holing proxy): libpq would
    wait forever without ``connect_timeout``; both drivers must give up within the lock timeout."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(LockError) as caught:
            with promotion_lock("sqlite:///x.db", "m", timeout=2, lock_uri=f"{scheme}://postgres@127.0.0.1:{port}/db"):
                pass
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 10, f"connecting to a silent server took {elapsed:.1f}s"
    assert str(caught.value).startswith("Cannot connect to the PostgreSQL database of the MLflow registry")


def test_a_missing_driver_names_the_package_for_the_uri_as_written(tmp_path: Path) -> None:
    with pytest.raises(LockError) as caught:
        with promotion_lock("sqlite:///x.db", "m", timeout=1, lock_uri="postgresql+pg8000://postgres@127.0.0.1/db"):
            pass
    message = str(caught.value)
    assert "'pg8000'" in message and "postgresql+psycopg://" in message and "postgresql+psycopg2://" in message


def test_driver_advice_follows_sqlalchemy_2_1_not_psycopg2_for_a_bare_uri() -> None:
    from airflow_ml_provider.promotion.lock import _driver_advice

    bare = _driver_advice("postgresql://u@h/db")
    assert "psycopg driver" in bare and "psycopg[binary]" in bare and "psycopg2" not in bare
    assert "psycopg2-binary" in _driver_advice("postgresql+psycopg2://u@h/db")
