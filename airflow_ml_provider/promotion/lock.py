"""Promotion lock: MLflow aliases are plain upserts, so concurrent promoters must be serialised.

Which lock is used depends on where the registry lives:

- PostgreSQL (``postgresql://`` or ``postgresql+<driver>://``): a session-level PostgreSQL advisory
  lock on a dedicated connection to the registry's own database. It holds across processes *and
  machines* (every promoter talks to the same server), and the server releases it when the holder's
  connection dies, so a killed worker never leaves a stale lock behind.
- anything else (SQLite, a file store, an MLflow server over HTTP): an exclusive ``flock`` on a lock
  file. It holds across processes on one machine only. When the registry is an MLflow server shared
  by several machines, set ``[ml_provider] lock_uri`` to a PostgreSQL database every worker can reach
  (for example the one behind the MLflow server) to get the advisory lock instead. A file lock taken
  where tasks or promoters may run on other machines (a remote executor, a registry served over HTTP)
  is warned about once per process (:mod:`airflow_ml_provider.deployment`).

Every failure is a :class:`LockError` whose message says what happened and what to do; database
driver errors are chained, never shown bare.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_ml_provider import conf
from airflow_ml_provider.deployment import warn_about_promotion_lock
from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.records.redaction import strip_credentials

log = logging.getLogger(__name__)

#: First key of the two-key advisory lock: marks our locks in ``pg_locks.classid`` ("MLPR").
ADVISORY_NAMESPACE = 0x4D4C5052
_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE raised when lock_timeout expires


class LockError(AirflowMLError, RuntimeError):
    """The promotion lock could not be taken or was lost; the message says why and what to do."""


class LockTimeout(LockError, TimeoutError):
    """Another promotion of the same model held the lock for longer than the timeout."""


def is_postgres_uri(uri: str | None) -> bool:
    scheme = (uri or "").split("://", 1)[0].lower()
    return "://" in (uri or "") and (scheme == "postgresql" or scheme.startswith("postgresql+"))


def advisory_key(model_name: str) -> tuple[int, int]:
    """``(namespace, model)``: the two int4 keys of ``pg_advisory_lock`` for this model's promotions."""
    digest = hashlib.sha256(model_name.encode()).digest()
    return ADVISORY_NAMESPACE, int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class HeldLock:
    """A lock that is held; :meth:`verify` raises :class:`LockError` if it has been lost since."""

    kind = "none"

    def __init__(self, model_name: str, where: str) -> None:
        self.model_name = model_name
        self.where = where

    def verify(self) -> None:
        """Check that the lock is still ours (call right before a write it protects)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_name!r} at {self.where}>"


@contextmanager
def promotion_lock(
    registry_uri: str, model_name: str, timeout: float = 60.0, *, lock_uri: str | None = None
) -> Iterator[HeldLock]:
    """Serialise promotions of ``model_name`` in the registry at ``registry_uri``.

    :param registry_uri: the MLflow registry URI; a PostgreSQL one selects the advisory lock.
    :param lock_uri: a PostgreSQL URI to lock on instead (default: ``[ml_provider] lock_uri``).
    :param timeout: seconds to wait for a concurrent promotion to finish before :class:`LockTimeout`.
    """
    lock_uri = lock_uri or conf.get("lock_uri")
    uri = lock_uri or registry_uri
    if is_postgres_uri(uri):
        with _advisory_lock(uri, model_name, timeout) as held:
            yield held
        return
    if lock_uri:
        raise LockError(
            f"The promotion lock URI {strip_credentials(uri, keep_user=True)} is not a PostgreSQL URI "
            f"(postgresql:// or postgresql+<driver>://). Fix [{conf.SECTION}] lock_uri "
            f"({conf.OPTIONS['lock_uri'].env_var}) or unset it to lock on this machine only."
        )
    warn_about_promotion_lock(uri)  # once per process, when tasks or promoters may be on other machines
    with _file_lock(uri, model_name, timeout) as held:
        yield held


# --- flock: across processes on one machine ------------------------------------------------------


def _lock_identity(uri: str) -> str:
    """Two spellings of one SQLite file (relative, absolute) must map to one lock."""
    if uri.lower().startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        return "sqlite:" + str(Path(path).resolve())
    return uri


@contextmanager
def _file_lock(uri: str, model_name: str, timeout: float) -> Iterator[HeldLock]:
    key = hashlib.sha256(f"{_lock_identity(uri)}\0{model_name}".encode()).hexdigest()[:24]
    directory = Path(conf.get("lock_dir") or tempfile.gettempdir())
    path = directory / f"airflow-ml-promote-{key}.lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError as e:
        raise LockError(
            f"Cannot create the promotion lock file for {model_name!r} in {directory}: {e.strerror}. "
            f"Make the directory writable or point [{conf.SECTION}] lock_dir "
            f"({conf.OPTIONS['lock_dir'].env_var}) at one that is."
        ) from e
    deadline = time.monotonic() + timeout
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(
                        f"Could not lock promotion of {model_name!r} within {timeout:g}s: another "
                        f"promotion of it holds {path}. Retry when it has finished; if none is running, "
                        "a stuck process holds the file (see `fuser` on it)."
                    ) from None
                time.sleep(0.05)
        try:
            yield HeldLock(model_name, str(path))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- PostgreSQL advisory lock: across processes and machines -------------------------------------


class _AdvisoryLock(HeldLock):
    kind = "postgresql-advisory"

    def __init__(self, model_name: str, where: str, connection: Any, keys: tuple[int, int]) -> None:
        super().__init__(model_name, where)
        self.connection = connection
        self.keys = keys

    def verify(self) -> None:
        from sqlalchemy import text

        try:
            held = self.connection.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid = :ns AND objid = :key AND objsubid = 2)"
                ),
                {"ns": self.keys[0], "key": self.keys[1]},
            ).scalar()
        except Exception as e:
            raise LockError(
                f"Lost the connection that holds the promotion lock of {self.model_name!r} on {self.where} "
                "(the server released the lock). Nothing was written after that; retry the promotion."
            ) from e
        if not held:
            raise LockError(
                f"The promotion lock of {self.model_name!r} on {self.where} is no longer held by this "
                "session. Nothing was written after that; retry the promotion."
            )


#: The PostgreSQL drivers whose connect arguments (libpq's) we set: SQLAlchemy 2.1 maps a bare
#: ``postgresql://`` to psycopg 3 ("psycopg"); ``postgresql+psycopg2://`` names psycopg2.
_LIBPQ_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary"}


def _driver_name(url: Any) -> str:
    """The driver SQLAlchemy will load for ``url`` (``psycopg`` for a bare ``postgresql://`` on 2.1)."""
    try:
        return str(url.get_dialect().driver)
    except Exception:  # the dialect module itself is missing: fall back to what the URI spells
        return str(url.get_driver_name())


def _driver_advice(uri: str) -> str:
    """Which package the worker needs for this URI, in the words of the URI the user wrote."""
    scheme = uri.split("://", 1)[0].lower()
    driver = scheme.split("+", 1)[1] if "+" in scheme else "psycopg"
    package = _LIBPQ_DRIVERS.get(driver)
    if package is None:
        return (
            f"The URI names the driver {driver!r}; install it in every worker's environment, or use "
            "postgresql+psycopg:// (psycopg 3) or postgresql+psycopg2:// (psycopg2)."
        )
    how = "postgresql:// and postgresql+psycopg:// use" if driver == "psycopg" else "postgresql+psycopg2:// uses"
    return (
        f"{how} the {driver} driver: install it in every worker's environment "
        f"(pip install '{package}', or airflow-ml-provider[postgres])."
    )


def _pg_errcode(error: BaseException) -> str | None:
    orig = getattr(error, "orig", error)
    return getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)


@contextmanager
def _advisory_lock(uri: str, model_name: str, timeout: float) -> Iterator[HeldLock]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    where = strip_credentials(uri, keep_user=True)
    try:
        url = make_url(uri)
        driver = _driver_name(url)
        connect_args: dict[str, Any] = {}
        if driver in _LIBPQ_DRIVERS:
            # Both drivers pass these to libpq: seconds, at least 2 (libpq's minimum), never longer
            # than the caller is willing to wait.
            connect_args = {
                "connect_timeout": max(2, math.ceil(min(timeout, 30.0))),
                "application_name": "airflow-ml promotion lock",
            }
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as e:
        raise LockError(
            f"Cannot use {where} for the promotion lock: {e}. {_driver_advice(uri)}"
        ) from e
    try:
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as e:
        engine.dispose()
        raise LockError(
            f"Cannot connect to the PostgreSQL database of the MLflow registry ({where}) to lock promotion "
            f"of {model_name!r}. Check that the server is running and reachable from this worker, then retry."
        ) from e
    keys = advisory_key(model_name)
    try:
        try:
            connection.execute(
                text("SELECT set_config('lock_timeout', :ms, false)"), {"ms": f"{max(1, int(timeout * 1000))}ms"}
            )
            connection.execute(text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": keys[0], "key": keys[1]})
        except SQLAlchemyError as e:
            if _pg_errcode(e) == _LOCK_NOT_AVAILABLE:
                raise LockTimeout(
                    f"Could not lock promotion of {model_name!r} within {timeout:g}s: another promotion of it "
                    f"holds the PostgreSQL advisory lock ({keys[0]}, {keys[1]}) on {where}. Retry when it has "
                    "finished; pg_locks shows the holder's pid."
                ) from e
            raise LockError(
                f"The PostgreSQL database of the MLflow registry ({where}) failed while taking the promotion "
                f"lock of {model_name!r}. Nothing was changed; check the server and retry."
            ) from e
        log.debug("Holding promotion lock %s on %s", keys, where)
        try:
            yield _AdvisoryLock(model_name, where, connection, keys)
        finally:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": keys[0], "key": keys[1]})
            except SQLAlchemyError:  # closing the connection below releases it on the server anyway
                log.warning("Could not unlock promotion lock %s on %s; closing the connection releases it", keys, where)
    finally:
        try:
            connection.close()
        finally:
            engine.dispose()
