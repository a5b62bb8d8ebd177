"""How every ``airflow-ml`` command finds the MLflow store: as the operators do, and never creating one.

The store comes from an Airflow connection of type ``mlflow`` (``--conn-id``, default
``[ml_provider] mlflow_conn_id``, then ``mlflow_default``), looked up as Airflow's own CLI looks
connections up: environment (``AIRFLOW_CONN_*``), the configured secrets backend, the metadata DB.
Without that connection, ``MLFLOW_TRACKING_URI``; ``--tracking-uri`` overrides both. MLflow would
silently create an empty SQLite or file store where none exists and report an empty registry: a
command that only reads a store refuses a local store that is not there.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_ml_provider.exceptions import AirflowMLError

if TYPE_CHECKING:
    from airflow_ml_provider.hooks.mlflow import MlflowHook


class StoreError(AirflowMLError):
    """The MLflow store cannot be used; the message says which one and what to do."""


@dataclass(frozen=True)
class Store:
    #: The store's hook: every MLflow call of a command goes through it.
    hook: MlflowHook
    tracking_uri: str
    #: The registry (the tracking store unless the connection names another): also the promotion lock's key.
    registry_uri: str
    #: Where the URI came from, e.g. "connection 'mlflow_default'", for messages.
    source: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MLflow store (as the operators find it)")
    group.add_argument(
        "--conn-id",
        default=None,
        help="Airflow connection of type 'mlflow' (default: [ml_provider] mlflow_conn_id, then mlflow_default; "
        "without that connection, MLFLOW_TRACKING_URI)",
    )
    group.add_argument("--tracking-uri", default=None, help="MLflow tracking URI; overrides the connection")


def open_store(args: argparse.Namespace) -> Store:
    """An existing store, resolved from ``--tracking-uri`` / ``--conn-id`` as described above and reachable."""
    from airflow_ml_provider.hooks.mlflow import MlflowConnectionError

    hook = _hook(args.conn_id, args.tracking_uri)
    try:
        settings = hook.settings
    except ValueError as e:
        raise StoreError(str(e)) from None
    for uri in dict.fromkeys((settings.tracking_uri, hook.registry_uri)):
        _require_existing(uri, hook.source)
    try:
        hook.connect()
    except MlflowConnectionError as e:
        raise StoreError(str(e)) from None
    return Store(hook, settings.tracking_uri, hook.registry_uri, hook.source)


def with_store(
    prefix: str, exit_code: int = 2
) -> Callable[[Callable[[argparse.Namespace, Store], int]], Callable[[argparse.Namespace], int]]:
    """Give a command's ``run(args, store)`` the store it names; when there is none to use, print why
    (``<prefix>: <reason>`` on stderr) and exit with ``exit_code`` instead of running it."""

    def decorate(command: Callable[[argparse.Namespace, Store], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(command)
        def run(args: argparse.Namespace) -> int:
            try:
                mlflow_store = open_store(args)
            except StoreError as e:
                print(f"{prefix}: {e}", file=sys.stderr)
                return exit_code
            return command(args, mlflow_store)

        return run

    return decorate


def _hook(conn_id: str | None, tracking_uri: str | None) -> MlflowHook:
    from airflow_ml_provider.hooks.mlflow import MlflowHook
    from airflow_ml_provider.operators.base import resolve_hook

    class CliMlflowHook(MlflowHook):
        """Outside a task the Task SDK reads only environment and secrets backends; this also reads the
        metadata DB, as ``airflow connections get`` does."""

        @classmethod
        def get_connection(cls, conn_id: str) -> Any:
            from airflow.models.connection import Connection

            return Connection.get_connection_from_secrets(conn_id)

    return CliMlflowHook(resolve_hook(conn_id).mlflow_conn_id, tracking_uri=tracking_uri)


def _require_existing(uri: str, source: str) -> None:
    path = local_store_path(uri)
    if path is None:
        return
    if path == "":
        raise StoreError(f"{uri} ({source}) is an in-memory SQLite store: it holds nothing to read")
    kind = "file" if uri.lower().startswith("sqlite") else "directory"
    exists = Path(path).is_file() if kind == "file" else Path(path).is_dir()
    if not exists:
        raise StoreError(
            f"There is no MLflow store at {uri} ({source}): the {kind} {Path(path).absolute()} does not exist, "
            "and airflow-ml does not create one. Point it at the store your DAGs write to: --tracking-uri URI, "
            "--conn-id ID (an Airflow connection of type 'mlflow'), or MLFLOW_TRACKING_URI "
            "(for the demo: source .demo/env.sh)."
        )


def local_store_path(uri: str) -> str | None:
    """The file (SQLite) or directory (file store) a local store URI names; "" for in-memory SQLite;
    None for a server or database that is not a local path."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "sqlite" or scheme.startswith("sqlite+"):
        database = uri.split("://", 1)[1].split("?", 1)[0]
        database = database[1:] if database.startswith("/") else database  # sqlite:///rel, sqlite:////abs
        return "" if database in ("", ":memory:") else unquote(database)
    if scheme == "file":
        return unquote(parts.path)
    if scheme == "" or (len(scheme) == 1 and uri[1:3] in (":\\", ":/")):  # a bare path (or a Windows drive)
        return uri
    return None
