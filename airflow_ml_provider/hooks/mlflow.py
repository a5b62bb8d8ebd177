"""MlflowHook: an Airflow connection of type ``mlflow``, and the one place the package talks to MLflow.

Every MLflow call of the provider (experiments, step runs, artifacts, registry versions, tags, aliases,
model logging and loading) is a method here; operators, the sensor, the trigger, the CLI and the
records call these methods. How the hook avoids process-wide state (per-connection credentials,
scoped HTTP bounds and fluent URIs) is in :mod:`airflow_ml_provider.hooks._client`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_ml_provider import conf
from airflow_ml_provider.exceptions import AirflowMLError
from airflow_ml_provider.hooks._client import Credentials

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput, Run
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel
    from mlflow.models.model import ModelInfo

#: Connection fields may be stored bare (Airflow 3 form) or with the legacy prefix.
_EXTRA_PREFIX = "extra__mlflow__"

#: Connection extras that bound MLflow's HTTP client: (extra, MLflow's variable, provider default).
#: MLflow's own defaults (7 retries, factor 2, 120 s) spend ~4 minutes on a server that is down; these
#: give up in a few seconds when the port is closed and in ~35 s when nothing answers at all.
#: MLflow reads the variables on every request, so the hook sets them for the span of its calls only
#: (see ``hooks._client.http_bounds``); a variable the user set wins over the default, an extra over both.
HTTP_SETTINGS: tuple[tuple[str, str, int], ...] = (
    ("http_request_timeout", "MLFLOW_HTTP_REQUEST_TIMEOUT", 10),
    ("http_request_max_retries", "MLFLOW_HTTP_REQUEST_MAX_RETRIES", 2),
    ("http_request_backoff_factor", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 1),
)


@dataclass(frozen=True)
class MlflowSettings:
    """Where MLflow lives, resolved from a connection or the environment. Holds no secrets."""

    tracking_uri: str
    registry_uri: str | None
    default_experiment: str | None
    #: Artifact location for experiments this provider creates (else MLflow's default, ./mlruns).
    artifact_location: str | None = None
    #: Seconds MLflow waits to connect to (and for an answer from) an HTTP tracking server.
    http_request_timeout: int = HTTP_SETTINGS[0][2]
    #: Retries of a failed HTTP request, with exponential backoff of this factor (seconds).
    http_request_max_retries: int = HTTP_SETTINGS[1][2]
    http_request_backoff_factor: int = HTTP_SETTINGS[2][2]


class MlflowConnectionError(AirflowMLError, RuntimeError):
    """The tracking server could not be reached; the message names the connection, the URI and what to check."""


def _http_settings(source: str, extra: Any) -> dict[str, int]:
    """The HTTP bounds: the connection's extra, else the user's variable, else the provider default."""
    out: dict[str, int] = {}
    for key, env, default in HTTP_SETTINGS:
        value, origin = extra(key), f"extra {key!r} of {source}"
        if value in (None, ""):
            value, origin = os.environ.get(env), env
        if value in (None, ""):
            out[key] = default
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < (1 if key == "http_request_timeout" else 0):
            raise ValueError(f"{origin} must be a whole number (timeout >= 1 s, others >= 0), got {value!r}")
        out[key] = number
    return out


def _tracking_uri_in_host(conn: Any, conn_id: str) -> str:
    """A connection without a ``tracking_uri`` extra may hold the whole URI in ``host``, and nothing else."""
    as_json = '{"conn_type": "mlflow", "extra": {"tracking_uri": "http://mlflow:5000"}}'
    example = (
        "Set the connection's Tracking URI (extra 'tracking_uri') to the whole URI, e.g. http://mlflow:5000 "
        f"(as an environment variable: AIRFLOW_CONN_{conn_id.upper()}='{as_json}')."
    )
    host = conn.host
    if not host:
        raise ValueError(f"MLflow connection {conn_id!r} has no tracking URI. {example}")
    if "://" not in host or conn.port or conn.schema:
        given = ", ".join(f"{k}={v!r}" for k, v in (("host", host), ("port", conn.port), ("schema", conn.schema)) if v)
        raise ValueError(
            f"MLflow connection {conn_id!r} has {given} but no tracking URI, and the hook does not build one from "
            f"host, port and schema (the scheme and port would be guesses). {example}"
        )
    return str(host)


def _connection_failure(error: BaseException) -> str | None:
    """Why a request never got an answer (refused, timed out, no route), or None if the server answered."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            reason = getattr(seen.args[0], "reason", seen) if seen.args else seen
            # urllib3 prefixes the reason with the connection object's repr: keep the sentence.
            return str(reason).rsplit("): ", 1)[-1].strip() or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None




def alias_missing(error: Exception) -> bool:
    """MLflow reports an unset alias as INVALID_PARAMETER_VALUE (SQL store) or RESOURCE_DOES_NOT_EXIST."""
    return "alias" in str(error).lower() and "not found" in str(error).lower()


def _does_not_exist(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


#: The page size of the hook's listings (MLflow's largest for runs and experiments).
_PAGE = 1000
#: MLflow's largest page of model versions (its default).
_VERSION_PAGE = 10_000


class MlflowHook(BaseHook):
    """
    Talks to an MLflow tracking server and model registry.

    The connection (type ``mlflow``) carries the whole tracking URI in its ``tracking_uri`` extra
    (the form's "Tracking URI"); a connection given as JSON or a secret may hold the whole URI in
    ``host`` instead. The hook never assembles a URI from host, port and schema: the scheme and port
    would be guesses. Extras: ``registry_uri``, ``default_experiment``, ``artifact_location`` (or
    ``[ml_provider] mlflow_artifact_location``: where experiments the provider creates keep artifacts),
    and the HTTP bounds of :data:`HTTP_SETTINGS`. ``login``/``password`` are this connection's MLflow
    credentials (basic auth; a password alone is a bearer token), sent by this hook's requests only:
    nothing is written to the environment, and MLflow's global URIs are left alone (the fluent
    ``log_model``/``load_model`` see this connection's URIs only for the span of the call). When the
    connection does not exist, the hook falls back to ``MLFLOW_TRACKING_URI`` (and
    ``MLFLOW_REGISTRY_URI``) and MLflow's own credentials variables, so a local setup works without
    any connection.

    :meth:`get_client` (``get_conn``) is the escape hatch for user code that needs an MLflow call the
    hook has no method for: a client on this connection's stores and credentials. The provider itself
    uses only the methods below.

    :param mlflow_conn_id: Airflow connection id of type ``mlflow``.
    :param tracking_uri: use this tracking URI instead of the connection (the CLI's ``--tracking-uri``).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self, mlflow_conn_id: str = default_conn_name, *, tracking_uri: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self.tracking_uri_override = tracking_uri
        #: Where the settings came from, as errors name it (set when they are resolved).
        self.source = f"connection {mlflow_conn_id!r}"
        self._settings: MlflowSettings | None = None
        #: The connection's credentials; None: MLflow's own (its environment variables), as without a connection.
        self._credentials: Credentials | None = None
        self._client: MlflowClient | None = None

    # --- settings ------------------------------------------------------------------------------------
    @property
    def settings(self) -> MlflowSettings:
        if self._settings is None:
            self._settings = self._resolve_settings()
        return self._settings

    @property
    def tracking_uri(self) -> str:
        return self.settings.tracking_uri

    @property
    def registry_uri(self) -> str:
        """The registry: the connection's ``registry_uri``, else the tracking store (also the promotion lock's key)."""
        return self.settings.registry_uri or self.settings.tracking_uri

    def _resolve_settings(self) -> MlflowSettings:
        from airflow.sdk.exceptions import AirflowNotFoundException

        if self.tracking_uri_override:
            self.source = "the tracking URI given"
            return self._environment_settings(self.tracking_uri_override)
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            conn = None
        if conn is None:
            tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
            if not tracking_uri:
                raise ValueError(
                    f"No MLflow connection {self.mlflow_conn_id!r} and MLFLOW_TRACKING_URI is not set. "
                    f"Create a connection of type 'mlflow' named {self.mlflow_conn_id!r} "
                    "or export MLFLOW_TRACKING_URI."
                )
            self.source = f"MLFLOW_TRACKING_URI (there is no connection {self.mlflow_conn_id!r})"
            return self._environment_settings(tracking_uri)

        self.source = f"connection {self.mlflow_conn_id!r}"
        extra = conn.extra_dejson

        def field(name: str) -> Any:  # 0 is a value (no retries); "" is what an emptied form field leaves
            return next((v for v in (extra.get(name), extra.get(_EXTRA_PREFIX + name)) if v not in (None, "")), None)

        tracking_uri = field("tracking_uri") or _tracking_uri_in_host(conn, self.mlflow_conn_id)
        settings = MlflowSettings(
            tracking_uri,
            field("registry_uri"),
            field("default_experiment"),
            field("artifact_location") or conf.get("mlflow_artifact_location"),
            **_http_settings(self.source, field),
        )
        # A connection without credentials sends none, whatever the environment holds.
        self._credentials = Credentials(conn.login or None, conn.password or None)
        return settings

    def _environment_settings(self, tracking_uri: str) -> MlflowSettings:
        return MlflowSettings(
            tracking_uri,
            os.environ.get("MLFLOW_REGISTRY_URI") or None,
            None,
            conf.get("mlflow_artifact_location"),
            **_http_settings(self.source, lambda _: None),
        )

    @classmethod
    def for_settings(cls, settings: MlflowSettings, source: str) -> MlflowHook:
        """A hook on settings resolved elsewhere (the trigger gets them from the sensor, not a connection);
        its credentials are MLflow's own (the process's environment)."""
        hook = cls()
        hook._settings, hook.source = settings, source
        return hook

    def _bounds(self) -> dict[str, int]:
        settings = self.settings
        return {env: int(getattr(settings, key)) for key, env, _ in HTTP_SETTINGS}

    @contextmanager
    def _scope(self, *, fluent: bool = False) -> Iterator[None]:
        """This connection for MLflow code that builds its own stores (artifacts, ``models:/``, fluent API).

        Those stores' errors are MLflow's own: when this client's tracking server has not answered yet, it is
        asked first (:meth:`connect`), so that one that cannot be reached is reported as such."""
        from airflow_ml_provider.hooks import _client

        if not _client.tracking_server_answered(self.get_client()):
            self.connect()
        with _client.request_scope(self._credentials, self._bounds()):
            if not fluent:
                yield
                return
            with _client.fluent_uris(self.tracking_uri, self.registry_uri):
                yield

    # --- the client (escape hatch) --------------------------------------------------------------------
    def get_conn(self) -> MlflowClient:
        return self.get_client()

    def get_client(self) -> MlflowClient:
        """An ``MlflowClient`` on this connection: its tracking and registry requests carry this connection's
        credentials and HTTP bounds; nothing process-wide is changed.

        For user code that needs a call the hook has no method for (artifact transfers through the
        client read credentials from the environment, see ``hooks._client``). A request to an HTTP tracking or
        registry server that cannot be reached fails within the connection's HTTP bounds with
        :class:`MlflowConnectionError`, which says where and what to check; building the client sends nothing.
        """
        if self._client is None:
            from airflow_ml_provider.hooks._client import connection_client

            settings = self.settings
            self._client = connection_client(
                settings.tracking_uri, self.registry_uri, self._credentials, self._bounds(), self._unreachable
            )
        return self._client

    def _unreachable(self, error: Exception, elapsed: float, uri: str) -> Exception | None:
        """:class:`MlflowConnectionError` for a request to the tracking or registry server at ``uri`` that got no
        answer; None when the server answered (its error is MLflow's to tell)."""
        from airflow_ml_provider.lineage.datasets import strip_credentials

        reason = _connection_failure(error)
        if reason is None:
            return None
        settings = self.settings
        return MlflowConnectionError(
            f"Cannot reach MLflow at {strip_credentials(uri)} ({self.source}): {reason}; "
            f"gave up after {settings.http_request_max_retries + 1} attempt(s) in {elapsed:.0f} s. Check that "
            "the MLflow server is running and reachable from this machine (host, port, proxy, firewall) and "
            "that this is its URI. For a slow or distant server raise the timeout (now "
            f"{settings.http_request_timeout} s) and retries: the connection's extras http_request_timeout and "
            "http_request_max_retries, or without a connection MLFLOW_HTTP_REQUEST_TIMEOUT and "
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES."
        )

    def connect(self) -> None:
        """Resolve the connection and, for an HTTP tracking server, check that it answers (else
        :class:`MlflowConnectionError` within the connection's HTTP bounds). The hook's own methods need no
        such check first: their first request fails the same way. Callers that want to fail early (the CLI)
        call it first."""
        from airflow_ml_provider.hooks._client import is_http

        if is_http(self.tracking_uri):
            self.get_client().search_experiments(max_results=1)

    def test_connection(self) -> tuple[bool, str]:
        from airflow_ml_provider.lineage.datasets import strip_credentials

        uri = strip_credentials(self.settings.tracking_uri)
        try:
            self.get_client().search_experiments(max_results=1)
        except MlflowConnectionError as e:  # the UI shows the message to the user; it names the URI already
            return False, str(e)
        except Exception as e:
            return False, f"MLflow at {uri} answered with an error: {e}"
        return True, f"Connected to MLflow at {uri}"

    # --- experiments ---------------------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it when missing (tolerates a concurrent create)."""
        from mlflow.exceptions import MlflowException

        client = self.get_client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=self.settings.artifact_location))
        except MlflowException:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def experiment_ids(self) -> list[str]:
        """The ids of every active experiment."""
        client, token = self.get_client(), None
        ids: list[str] = []
        while True:
            page = client.search_experiments(max_results=_PAGE, page_token=token)
            ids.extend(str(e.experiment_id) for e in page)
            token = page.token
            if not token:
                return ids

    # --- runs ----------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        return self.get_client().get_run(run_id)

    def create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Run:
        return self.get_client().create_run(experiment_id, run_name=run_name, tags=dict(tags))

    def delete_run(self, run_id: str) -> None:
        self.get_client().delete_run(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        """``RUNNING`` (re)opens the run; any other MLflow status (``FINISHED``, ``FAILED``...) ends it."""
        if status == "RUNNING":
            self.get_client().update_run(run_id, status="RUNNING")
        else:
            self.get_client().set_terminated(run_id, status)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        *,
        order_by: Sequence[str] | None = None,
        max_results: int = _PAGE,
    ) -> list[Run]:
        """The first ``max_results`` runs matching ``filter_string`` (one page)."""
        return list(
            self.get_client().search_runs(
                list(experiment_ids), filter_string=filter_string, order_by=list(order_by or []) or None,
                max_results=max_results,
            )
        )

    def search_all_runs(self, experiment_ids: Sequence[str], filter_string: str) -> list[Run]:
        """Every run matching ``filter_string``, page after page."""
        client, token = self.get_client(), None
        runs: list[Run] = []
        while True:
            page = client.search_runs(
                list(experiment_ids), filter_string=filter_string, max_results=_PAGE, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def child_runs(self, parent_run_id: str, filter_string: str = "", experiment_id: str | None = None) -> list[Run]:
        """Every run nested under ``parent_run_id`` (in its experiment: pass ``experiment_id`` when known, which
        saves reading the parent), optionally filtered further."""
        if experiment_id is None:
            experiment_id = self.get_run(parent_run_id).info.experiment_id
        query = f"tags.`mlflow.parentRunId` = '{parent_run_id}'" + (f" and {filter_string}" if filter_string else "")
        return self.search_all_runs([experiment_id], query)

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Params, metrics (logged now, step 0) and tags in one request."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.get_client().log_batch(
            run_id,
            params=[Param(str(k), str(v)) for k, v in (params or {}).items()],
            metrics=[Metric(str(k), float(v), now, 0) for k, v in (metrics or {}).items()],
            tags=[RunTag(str(k), str(v)) for k, v in (tags or {}).items()],
        )

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> None:
        with self._scope():
            self.get_client().log_dict(run_id, data, artifact_file)

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        self.get_client().log_inputs(run_id, datasets=list(datasets))

    # --- artifacts -----------------------------------------------------------------------------------
    @contextmanager
    def download_artifacts(self, run_id: str, path: str) -> Iterator[Path]:
        """Artifact ``path`` of run ``run_id``, downloaded into a temporary directory removed afterwards."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp, self._scope():
            yield Path(self.get_client().download_artifacts(run_id, path, tmp))

    @contextmanager
    def download_artifact_file(self, run_id: str, path: str) -> Iterator[Path]:
        """The artifact file ``path`` of run ``run_id`` (:meth:`download_artifacts` for a path that is a file: one
        request fewer against a server). A missing one raises MLflow's error: RESOURCE_DOES_NOT_EXIST from a local
        store, a failed download naming the path from a server's artifact proxy."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp, self._scope():
            client: Any = self.get_client()  # hooks._client's ConnectionClient
            yield Path(client.download_artifact_file(run_id, path, tmp))

    def read_json_artifact(self, run_id: str, path: str) -> Any:
        """A JSON artifact, parsed. A missing one raises MLflow's error (see :meth:`download_artifact_file`);
        unreadable or malformed ones raise OSError, UnicodeDecodeError or json.JSONDecodeError."""
        import json

        with self.download_artifact_file(run_id, path) as local:
            return json.loads(local.read_text())

    @contextmanager
    def download_model(self, model_uri: str) -> Iterator[Path]:
        """The files of ``model_uri`` (``runs:/``, ``models:/``...) from this store, in a temporary directory.

        MLflow adds a ``registered_model_meta`` file to downloads of ``models:/<name>/<version>`` (registry
        bookkeeping, not model bytes); it is removed, so a logged model and its version have the same files.
        The fluent URIs are scoped too: MLflow resolves a logged model's ``models:/m-<id>`` through a client
        of the global tracking URI, whatever ``tracking_uri`` it is given (seen against an HTTP server:
        "Logged model ... not found" from the local default store).
        """
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            yield self._download_model_into(model_uri, tmp)

    def _download_model_into(self, model_uri: str, directory: str) -> Path:
        import mlflow

        with self._scope(fluent=True):
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=directory, tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri,
                )
            )
        (local / "registered_model_meta").unlink(missing_ok=True)
        return local

    # --- registry --------------------------------------------------------------------------------------
    def model_version(self, name: str, version: str) -> ModelVersion | None:
        """The registered version, or None when the registry answers that it does not exist
        (an unreachable registry raises its own error)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.get_client().get_model_version(name, str(version))
        except MlflowException as e:
            if _does_not_exist(e):
                return None
            raise

    def model_versions(self, name: str, *, run_ids: Sequence[str] | None = None) -> list[ModelVersion]:
        """Every version of registered model ``name``, newest first; with ``run_ids``, only those logged by
        these MLflow runs (the version's ``run_id``: set at registration, before any tag)."""
        query = f"name = '{name}'"
        if run_ids is not None:
            if not run_ids:
                return []
            query += " and run_id IN (" + ", ".join(f"'{run_id}'" for run_id in run_ids) + ")"
        found = self.get_client().search_model_versions(query)
        return sorted(found, key=lambda v: int(v.version), reverse=True)

    def search_model_versions(self, filter_string: str) -> list[ModelVersion]:
        """Every version of any model matching ``filter_string`` (MLflow's model-version search), page after page."""
        client, token = self.get_client(), None
        found: list[ModelVersion] = []
        while True:
            page = client.search_model_versions(filter_string, max_results=_VERSION_PAGE, page_token=token)
            found.extend(page)
            token = page.token
            if not token:
                return found

    def every_model_version(self) -> list[ModelVersion]:
        """Every version of every registered model (one search per 10,000 versions)."""
        return self.search_model_versions("")

    def registered_models(self) -> list[RegisteredModel]:
        """Every registered model, with its aliases and description, by name."""
        client, token = self.get_client(), None
        models: list[RegisteredModel] = []
        while True:
            page = client.search_registered_models(max_results=_PAGE, page_token=token, order_by=["name ASC"])
            models.extend(page)
            token = page.token
            if not token:
                return models

    def registered_model(self, name: str) -> RegisteredModel | None:
        """The registered model (aliases, description, tags), or None when it does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.get_client().get_registered_model(name)
        except MlflowException as e:
            if _does_not_exist(e):
                return None
            raise

    def registered_model_exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.get_client().get_registered_model(name)
        except MlflowException as e:
            if _does_not_exist(e):
                return False
            raise
        return True

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set several tags on a version, in order (MLflow has no batch call for version tags: one request each).

        MLflow's client reads the registered model before every tag, to refuse tagging a prompt; the first tag
        goes through that check and the others straight to the registry, since the name cannot change between.
        """
        client = self.get_client()
        registry = client._get_registry_client()
        for i, (key, value) in enumerate(tags.items()):
            (registry if i else client).set_model_version_tag(name, str(version), str(key), str(value))

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self.get_client().set_registered_model_tag(name, key, value)

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` of ``name`` points to, or None when the alias is not set.

        Any other registry error (unknown model aside, which MLflow reports the same way) is raised.
        """
        from mlflow.exceptions import MlflowException

        try:
            return str(self.get_client().get_model_version_by_alias(name, alias).version)
        except MlflowException as e:
            if alias_missing(e):
                return None
            raise

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.get_client().set_registered_model_alias(name, alias, str(version))

    # --- models ----------------------------------------------------------------------------------------
    def log_model(self, run_id: str, flavor: str, **kwargs: Any) -> ModelInfo:
        """``mlflow.<flavor>.log_model(**kwargs)`` into run ``run_id`` (and the registry, with
        ``registered_model_name``).

        MLflow offers model logging only through its fluent API, which reads the process-global URIs:
        they point at this connection for the span of the call (a task process serves one connection).
        """
        import importlib

        import mlflow

        from airflow_ml_provider.hooks._client import quiet_serialization

        module = importlib.import_module(f"mlflow.{flavor}")
        with self._scope(fluent=True), quiet_serialization(flavor == "sklearn"), mlflow.start_run(run_id=run_id):
            return module.log_model(**kwargs)

    def register_model(self, name: str, model_uri: str, tags: Mapping[str, str]) -> str:
        """Register the logged model ``model_uri`` (``models:/m-<id>``) as a new version of ``name`` (created when
        absent) with ``tags`` set in the same request; returns the version. Fluent API, scoped as in
        :meth:`log_model` (it is what ``log_model(registered_model_name=...)`` calls)."""
        import mlflow

        with self._scope(fluent=True):
            return str(mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()}).version)

    def load_model(self, model_uri: str) -> Any:
        """A model for scoring: the native scikit-learn object when it has that flavor (so
        ``predict_proba`` is available), otherwise the pyfunc model. Fluent API, scoped as in :meth:`log_model`.

        The model is resolved and downloaded once, its flavors read from the downloaded ``MLmodel``, and it is
        loaded from those files. A pyfunc model may read them after loading, so they are removed when the
        model object is garbage-collected (a scikit-learn model is all in memory: removed at once)."""
        import shutil
        import tempfile
        import weakref

        import mlflow

        from airflow_ml_provider.hooks._client import quiet_serialization

        directory = tempfile.mkdtemp(prefix="airflow-ml-model-")
        try:
            local, sklearn = self._download_for_loading(model_uri, directory)
            with self._scope(fluent=True), quiet_serialization(sklearn):
                model = (mlflow.sklearn if sklearn else mlflow.pyfunc).load_model(str(local))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        if sklearn:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            weakref.finalize(model, shutil.rmtree, directory, True)
        return model

    def _download_for_loading(self, model_uri: str, directory: str) -> tuple[Path, bool]:
        """The files that loading ``model_uri`` reads, into ``directory``; and whether it is a scikit-learn model.

        ``MLmodel`` first. A scikit-learn model is loaded from its model file (and its ``code`` directory, if
        it was logged with code): only those are downloaded, not its environment files and examples, one
        request each against a server. Any other flavor may read any of its files: all are downloaded.
        The model is resolved once, by one artifact repository (``models:/`` asks the registry where it is).
        """
        from mlflow.models import Model
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.tracking.artifact_utils import _get_root_uri_and_artifact_path

        from airflow_ml_provider.hooks._client import download_file

        with self._scope(fluent=True):
            root, path = _get_root_uri_and_artifact_path(model_uri)
            repo = get_artifact_repository(root, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
            local = Path(directory) / path if path else Path(directory)

            def remote(relative: str) -> str:
                return "/".join(p for p in (path, relative) if p)

            download_file(repo, remote("MLmodel"), directory)
            sklearn = Model.load(str(local / "MLmodel")).flavors.get("sklearn")
            if sklearn is None:
                repo.download_artifacts(remote(""), directory)
            else:
                download_file(repo, remote(str(sklearn["pickled_model"])), directory)
                if sklearn.get("code"):
                    repo.download_artifacts(remote(str(sklearn["code"])), directory)
        (local / "registered_model_meta").unlink(missing_ok=True)
        return local, sklearn is not None

    def model_info(self, model_uri: str) -> ModelInfo:
        """The model's metadata (flavors, signature)."""
        from mlflow.models import get_model_info

        with self._scope(fluent=True):
            return get_model_info(model_uri)
