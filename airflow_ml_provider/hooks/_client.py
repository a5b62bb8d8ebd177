"""How :class:`~airflow_ml_provider.hooks.mlflow.MlflowHook` talks to MLflow without process-wide state.

MLflow keeps its connection state in the process: the fluent API's tracking and registry URIs are
module globals (mirrored into ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``), credentials are read
from ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``/``_TOKEN`` and the HTTP bounds from
``MLFLOW_HTTP_REQUEST_*``, all on every request. A triggerer serves gates of many connections in one
process, so the hook changes none of that permanently. The seams used (MLflow 3.17):

- **Credentials, tracking and registry requests**: the client's REST stores are built with this
  connection's :class:`~mlflow.utils.rest_utils.MlflowHostCreds` (``RestStore(get_host_creds)`` is
  MLflow's own constructor argument for that), through small subclasses of MLflow's tracking and
  registry service clients (:func:`connection_client`).
- **Credentials, everything else** (the server's artifact proxy ``mlflow-artifacts:``, ``models:/``
  downloads and the fluent ``log_model``/``load_model``, which build their own stores from the
  environment): a request-header provider, registered once with MLflow's header registry, adds this
  connection's ``Authorization`` header while a :func:`request_scope` is open in the calling thread
  or task (a :class:`~contextvars.ContextVar`: other threads and other hooks never see it). Credentials
  the user exported in the environment win there, as MLflow puts them after the providers' headers.
- **HTTP bounds**: MLflow's ``http_request`` takes them as arguments but its REST stores never pass
  them, so they can only be given as the environment variables, which this module sets for the span of
  each call and restores afterwards (:func:`http_bounds`). The environment is shared by all threads:
  calls that overlap in time (two gates checked at once in a triggerer) run with the bounds of the
  one that started first; the variables are back as they were once none is running.
- **Fluent URIs** (``log_model``/``load_model`` read the global URIs): set for the call and restored
  (:func:`fluent_uris`), under a process-wide lock. A task process serves one connection, so this
  only serialises a task's own model logging and loading.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.utils.rest_utils import MlflowHostCreds


@dataclass(frozen=True)
class Credentials:
    """A connection's login (basic auth) or password alone (a bearer token); never logged."""

    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"Credentials(username={self.username!r}, password={'***' if self.password else None})"

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header MLflow would send for these credentials."""
        if self.username:
            raw = f"{self.username}:{self.password or ''}".encode()
            return "Basic " + base64.standard_b64encode(raw).decode()
        return f"Bearer {self.password}" if self.password else None


def is_http(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


# --- HTTP bounds -------------------------------------------------------------------------------------

_bounds_lock = threading.Lock()
_bounds_depth = 0
_bounds_saved: dict[str, str | None] = {}


@contextmanager
def http_bounds(bounds: Mapping[str, int]) -> Iterator[None]:
    """MLflow's HTTP bounds (``{variable: value}``) for the span of a call; the environment as it was after.

    Nested and overlapping spans share the values of the outermost one (see the module docstring).
    """
    global _bounds_depth, _bounds_saved
    with _bounds_lock:
        if _bounds_depth == 0:
            _bounds_saved = {name: os.environ.get(name) for name in bounds}
            os.environ.update({name: str(value) for name, value in bounds.items()})
        _bounds_depth += 1
    try:
        yield
    finally:
        with _bounds_lock:
            _bounds_depth -= 1
            if _bounds_depth == 0:
                for name, value in _bounds_saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


# --- credentials outside the client's own stores -------------------------------------------------------

_scoped_authorization: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "airflow_ml_mlflow_authorization", default=None
)
_provider_lock = threading.Lock()
_provider_registered = False


def _register_header_provider() -> None:
    """Register (once per process) the provider that adds the scoped connection's ``Authorization`` header."""
    global _provider_registered
    with _provider_lock:
        if _provider_registered:
            return
        from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider
        from mlflow.tracking.request_header.registry import _request_header_provider_registry

        class ConnectionAuthorization(RequestHeaderProvider):
            """Inert outside :func:`request_scope`: ``in_context`` is False when no connection is scoped."""

            def in_context(self) -> bool:
                return _scoped_authorization.get() is not None

            def request_headers(self) -> dict[str, str]:
                value = _scoped_authorization.get()
                return {"Authorization": value} if value else {}

        _request_header_provider_registry.register(ConnectionAuthorization)
        _provider_registered = True


@contextmanager
def request_scope(credentials: Credentials | None, bounds: Mapping[str, int]) -> Iterator[None]:
    """This connection's credentials and HTTP bounds for MLflow requests made outside the client's stores."""
    authorization = credentials.authorization if credentials else None
    if authorization:
        _register_header_provider()
    token = _scoped_authorization.set(authorization)
    try:
        with http_bounds(bounds):
            yield
    finally:
        _scoped_authorization.reset(token)


# --- fluent URIs -----------------------------------------------------------------------------------------

_fluent_lock = threading.RLock()


@contextmanager
def fluent_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at these URIs for the call, then put back the globals and their variables."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _fluent_lock:
        saved_env = {name: os.environ.get(name) for name in names}
        saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(registry_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]  # None unsets, as MLflow's own scope does
            registry_utils._registry_uri = saved_registry
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextmanager
def quiet_serialization(sklearn: bool) -> Iterator[None]:
    """Silence the warnings skops raises while (de)serialising scikit-learn models; with ``sklearn`` (the
    model has MLflow's sklearn flavor) import skops quickly (:mod:`airflow_ml_provider.hooks._skops`) before
    the flavor does. Other models never import skops.

    skops looks functions up across every loaded module, which touches each deprecated Airflow
    attribute: over a thousand DeprecatedImportWarning lines per task log, none about the user's code.
    """
    from airflow_ml_provider.hooks._skops import import_skops

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"skops\.")
        if sklearn:
            import_skops()
        yield


# --- the client ------------------------------------------------------------------------------------------


def host_creds(uri: str, credentials: Credentials | None) -> MlflowHostCreds:
    """MLflow's host credentials for ``uri``: the connection's (None: MLflow's, from the environment);
    TLS and the other options from the environment, as MLflow reads them."""
    from mlflow.utils.credentials import get_default_host_creds

    creds = get_default_host_creds(uri)
    if credentials is None:
        return creds
    username, password, token = (
        (credentials.username, credentials.password or "", None)
        if credentials.username
        else (None, None, credentials.password)
    )
    creds.username, creds.password, creds.token = username, password, token
    return creds


#: Turns the error of a request to the store at a URI into the one to raise (or None: raise it as it is), told
#: how long the request took with its retries: ``unreachable(error, seconds, uri)``.
Unreachable = Callable[[Exception, float, str], "Exception | None"]


def connection_client(
    tracking_uri: str,
    registry_uri: str,
    credentials: Credentials | None,
    bounds: Mapping[str, int],
    unreachable: Unreachable | None = None,
) -> MlflowClient:
    """An ``MlflowClient`` whose HTTP tracking and registry stores use ``credentials`` and ``bounds``; the errors
    of their requests pass through ``unreachable``."""
    return _client_class()(tracking_uri, registry_uri, credentials, dict(bounds), unreachable)


def download_file(repo: Any, path: str, directory: str) -> str:
    """``repo.download_artifacts(path, directory)`` for a ``path`` known to be a file, without the listing MLflow
    sends first to tell a file from a directory (a request of its own against a server).

    Any failure falls back to MLflow's own download, which raises MLflow's error, so callers see what they
    would have seen without the shortcut (a missing file: RESOURCE_DOES_NOT_EXIST from a local store, a failed
    download naming the path from a server's artifact proxy).
    """
    local = os.path.join(directory, *path.split("/"))
    os.makedirs(os.path.dirname(local), exist_ok=True)
    try:
        repo._download_file(path, local)  # what download_artifacts calls for each file it finds
    except Exception:
        return str(repo.download_artifacts(path, directory))
    return local


def tracking_server_answered(client: MlflowClient) -> bool:
    """Whether a request of ``client``'s HTTP tracking store has been answered (True for a store that is not HTTP)."""
    store = getattr(client._tracking_client, "_rest", None)  # set by ConnectionClient
    return store is None or bool(store.answered)


@functools.cache
def _client_class() -> Any:
    """Built on first use, so that importing the hook never imports MLflow (DAG parse time)."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.model_registry.rest_store import RestStore as RegistryRestStore
    from mlflow.store.tracking.rest_store import RestStore as TrackingRestStore
    from mlflow.tracking._model_registry.client import ModelRegistryClient
    from mlflow.tracking._tracking_service import utils as tracking_utils
    from mlflow.tracking._tracking_service.client import TrackingServiceClient
    from mlflow.utils.time import get_current_time_millis
    from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

    class Bounded:
        """A REST store (tracking or registry) with fixed host credentials, each request within ``bounds``.

        Its requests' errors pass through ``unreachable`` with the store's URI (a server that could not be
        reached is told apart there), and it remembers whether the server has answered."""

        def __init__(
            self, uri: str, creds: MlflowHostCreds, bounds: Mapping[str, int], unreachable: Unreachable | None
        ) -> None:
            super().__init__(lambda: creds)  # type: ignore[call-arg]  # RestStore(get_host_creds)
            self._uri, self._bounds, self._unreachable = uri, bounds, unreachable
            self.answered = False

        def _call_endpoint(self, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                with http_bounds(self._bounds):
                    result = super()._call_endpoint(*args, **kwargs)  # type: ignore[misc]
            except Exception as e:
                error = self._unreachable(e, time.monotonic() - started, self._uri) if self._unreachable else None
                if error is None:
                    self.answered = True
                    raise
                raise error from e
            self.answered = True
            return result

    class BoundedTrackingStore(Bounded, TrackingRestStore):  # type: ignore[misc]
        pass

    class BoundedRegistryStore(Bounded, RegistryRestStore):  # type: ignore[misc]
        pass

    class OwnStore:
        """A service client whose ``store`` is the one given (else MLflow's, for a URI that is not HTTP)."""

        _rest: Any = None

        @property
        def store(self) -> Any:
            return self._rest if self._rest is not None else super().store  # type: ignore[misc]

    class TrackingClient(OwnStore, TrackingServiceClient):  # type: ignore[misc]
        """MLflow's tracking client, without the reads it makes only to learn what it was already told.

        MLflow reads a run before every status change (``update_run`` to send back the end time it already
        has, ``set_terminated`` to print the run's URL) and before the first artifact transfer of each run in
        a process (for its artifact URI). Against a server each read is a request; a step changes three
        statuses and writes artifacts to its own run. Here a status is written without reading the run (an
        end time left out is kept by the store), and the artifact URI is taken from any run this client
        created, read or found (it never changes). Run artifacts are downloaded through that repository too,
        not MLflow's ``runs:/`` resolution, which reads the run again with a client of its own and searches
        the logged models first; a file known to be one without listing it first.
        """

        def __init__(
            self, uri: str, credentials: Credentials | None, bounds: Mapping[str, int], unreachable: Unreachable | None
        ) -> None:
            self._rest = (
                BoundedTrackingStore(uri, host_creds(uri, credentials), bounds, unreachable) if is_http(uri) else None
            )
            self._artifact_uris: dict[str, str] = {}
            super().__init__(uri)

        def _known(self, run: Any) -> Any:
            self._artifact_uris[run.info.run_id] = run.info.artifact_uri
            return run

        def get_run(self, run_id: str) -> Any:
            return self._known(super().get_run(run_id))

        def create_run(self, *args: Any, **kwargs: Any) -> Any:
            return self._known(super().create_run(*args, **kwargs))

        def search_runs(self, *args: Any, **kwargs: Any) -> Any:
            page = super().search_runs(*args, **kwargs)
            for run in page:
                self._known(run)
            return page

        def _get_artifact_repo(self, resource_id: str, *, resource: Literal["run", "logged_model"] = "run") -> Any:
            uri = self._artifact_uris.get(resource_id) if resource == "run" else None
            if uri is not None and resource_id not in tracking_utils._artifact_repos_cache:
                tracking_utils._artifact_repos_cache[resource_id] = get_artifact_repository(
                    add_databricks_profile_info_to_artifact_uri(uri, self.tracking_uri), tracking_uri=self.tracking_uri
                )
            return super()._get_artifact_repo(resource_id, resource=resource)

        def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
            return str(self._get_artifact_repo(run_id).download_artifacts(path, dst_path))

        def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
            if status is not None or name is not None:
                run_status = RunStatus.from_string(status) if status is not None else None
                self.store.update_run_info(run_id, run_status=run_status, end_time=None, run_name=name)

        def set_terminated(self, run_id: str, status: str | None = None, end_time: int | None = None) -> None:
            self.store.shut_down_async_logging()  # as MLflow does: what was queued is sent first
            self.store.update_run_info(
                run_id,
                run_status=RunStatus.from_string(status or "FINISHED"),
                end_time=end_time or get_current_time_millis(),
                run_name=None,
            )

    class RegistryClient(OwnStore, ModelRegistryClient):  # type: ignore[misc]
        def __init__(
            self,
            uri: str,
            tracking_uri: str,
            credentials: Credentials | None,
            bounds: Mapping[str, int],
            unreachable: Unreachable | None,
        ) -> None:
            self._rest = BoundedRegistryStore(uri, host_creds(uri, credentials), bounds, unreachable)
            super().__init__(uri, tracking_uri)

    class ConnectionClient(MlflowClient):  # type: ignore[misc]
        """MLflow's client, with its tracking and registry service clients replaced by the ones above."""

        def __init__(
            self,
            tracking_uri: str,
            registry_uri: str,
            credentials: Credentials | None,
            bounds: Mapping[str, int],
            unreachable: Unreachable | None,
        ) -> None:
            super().__init__(tracking_uri=tracking_uri, registry_uri=registry_uri)
            self._tracking_client = TrackingClient(tracking_uri, credentials, bounds, unreachable)
            self._connection = (registry_uri, credentials, bounds, unreachable)
            self._connection_registry: Any = None

        def download_artifact_file(self, run_id: str, path: str, dst_path: str) -> str:
            """``download_artifacts`` of a ``path`` known to be a file (:func:`download_file`)."""
            return download_file(self._tracking_client._get_artifact_repo(run_id), path, dst_path)

        def _get_registry_client(self) -> Any:
            """A non-HTTP registry is MLflow's own (it reads no credentials); built lazily, as MLflow does."""
            registry_uri, credentials, bounds, unreachable = self._connection
            if not is_http(registry_uri):
                return super()._get_registry_client()
            if self._connection_registry is None:
                self._connection_registry = RegistryClient(
                    registry_uri, self.tracking_uri, credentials, bounds, unreachable
                )
            return self._connection_registry

    return ConnectionClient
